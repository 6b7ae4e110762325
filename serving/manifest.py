"""``component.json``: what an exported component expects, written beside its ONNX file by the export.

The Triton config keeps checkpoint-dependent dims variable (-1); this manifest pins them for the
checkpoint that was exported, so the runner can reject a wrong shape with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_FILE = "component.json"
ONNX_FILE = "model.onnx"  # beside the manifest; the name Triton's onnxruntime backend loads
MANIFEST_FORMAT = 2  # bump when a field's meaning changes, so stale exports fail to load with a clear reason
DEFAULT_PRECISION = "fp32"  # also what an export made before precisions were recorded ran at


@dataclass(frozen=True)
class TensorManifest:
    name: str
    dtype: str
    shape: list[int]  # per item, without the batch axis; -1 on a dynamic axis (a text's length)
    value_range: list[int] | None = None  # inclusive [low, high] for integer inputs such as token ids
    dynamic_axes: dict[str, int] = field(default_factory=dict)  # axis name -> its position in ``shape``
    max_shape: list[int] | None = None  # the largest per-item shape accepted (dynamic axes at their maximum)
    pad_value: int | None = None  # fills a dynamic axis when requests of different lengths share a batch

    def __post_init__(self) -> None:
        if self.dynamic_axes and (self.max_shape is None or self.pad_value is None):
            raise ValueError(f"{MANIFEST_FILE}: input {self.name} has dynamic axes but no max_shape or pad_value")


@dataclass(frozen=True)
class ComponentManifest:
    name: str
    max_batch_size: int
    inputs: list[TensorManifest]
    outputs: list[TensorManifest]
    parity: dict = field(default_factory=dict)
    precision: str = DEFAULT_PRECISION  # what the export made: fp32, or int8 (export/precision.py)
    # TensorRT precision -> the QDQ model made for its engines beside model.onnx: {"file": ..., "parity": report}
    # (export/qdq.py); an engine of that precision is built from it.
    qdq: dict[str, dict] = field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_FILE
        path.write_text(json.dumps({"format": MANIFEST_FORMAT, **asdict(self)}, indent=2) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> ComponentManifest:
        data = json.loads((folder / MANIFEST_FILE).read_text())
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(
                f"{MANIFEST_FILE} has format {data.get('format')}, this code reads {MANIFEST_FORMAT}: "
                "export the checkpoint again (vlm-export)"
            )
        return cls(
            name=data["name"],
            max_batch_size=data["max_batch_size"],
            inputs=[TensorManifest(**t) for t in data["inputs"]],
            outputs=[TensorManifest(**t) for t in data["outputs"]],
            parity=data.get("parity", {}),
            precision=data.get("precision", DEFAULT_PRECISION),
            qdq=data.get("qdq", {}),
        )


def recorded_precision(folder: Path) -> str:
    """The precision the export in ``folder`` recorded (read without the format check: the configs need only this)."""
    return str(json.loads((folder / MANIFEST_FILE).read_text()).get("precision", DEFAULT_PRECISION))
