"""``engine.json``, written beside each TensorRT engine: what built it, for which GPU, at what precision and
with which optimisation profile, from which ONNX file. Pure (no TensorRT, no GPU): the checks run anywhere.

A TensorRT engine loads only into the TensorRT version that built it, on a GPU of the same compute
capability; TensorRT itself fails with an opaque deserialisation error. ``check_loadable`` turns that into
a message naming both sides, and ``is_current`` tells ``vlm-export engine`` which engines to rebuild.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

ENGINE_FILE = "model.plan"  # the name Triton's tensorrt backend loads
SIDECAR_FILE = "engine.json"
SIDECAR_FORMAT = 1
# int8 and fp8 engines are built from the export's QDQ model (export/qdq.py), the others from model.onnx.
PRECISIONS = ("fp16", "bf16", "fp32", "int8", "fp8")
DEFAULT_PRECISION = "fp16"
# The oldest GPU generation whose tensor cores run a precision: fp8 from Ada and Hopper (8.9), bfloat16 from Ampere.
MIN_COMPUTE_CAPABILITY = {"fp8": (8, 9), "bf16": (8, 0)}
DEFAULT_WORKSPACE_BYTES = 4 << 30  # TensorRT's scratch memory limit while building and running


class EngineMismatchError(RuntimeError):
    """An engine that this TensorRT or this GPU cannot load; the message says what to rebuild and why."""


@dataclass(frozen=True)
class EngineHost:
    """The TensorRT and GPU an engine is built on, or loaded on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"


@dataclass(frozen=True)
class EngineSidecar:
    component: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    workspace_bytes: int
    profiles: dict[str, dict[str, list[int]]]  # input -> {"min": shape, "opt": shape, "max": shape}
    source_onnx_sha256: str

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"{SIDECAR_FILE}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name, shapes in self.profiles.items():
            if set(shapes) != {"min", "opt", "max"}:
                raise ValueError(f"{SIDECAR_FILE}: profile of {name} needs min, opt and max shapes")

    @property
    def host(self) -> EngineHost:
        return EngineHost(self.tensorrt_version, self.gpu_name, self.compute_capability)

    def write(self, folder: Path) -> Path:
        path = folder / SIDECAR_FILE
        path.write_text(json.dumps({"format": SIDECAR_FORMAT, **asdict(self)}, indent=2) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> EngineSidecar:
        path = folder / SIDECAR_FILE
        if not path.is_file():
            raise EngineMismatchError(
                f"{folder.name}: {ENGINE_FILE} has no {SIDECAR_FILE} beside it, so where it was built is unknown; "
                "rebuild it with `vlm-export engine`"
            )
        data = json.loads(path.read_text())
        if data.pop("format", None) != SIDECAR_FORMAT:
            raise EngineMismatchError(f"{folder.name}: {SIDECAR_FILE} is not format {SIDECAR_FORMAT}; rebuild it")
        return cls(**data)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_sha256(onnx_path: Path) -> str:
    """The graph and its external weights together: either changing means the engine is stale."""
    digest = hashlib.sha256()
    for path in (onnx_path, onnx_path.with_name(onnx_path.name + ".data")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def check_loadable(sidecar: EngineSidecar, host: EngineHost) -> None:
    """Raise ``EngineMismatchError`` when ``host`` cannot load the engine ``sidecar`` describes."""
    if sidecar.tensorrt_version != host.tensorrt_version:
        raise EngineMismatchError(
            f"{sidecar.component}: the engine was built with TensorRT {sidecar.tensorrt_version}, "
            f"this runtime is TensorRT {host.tensorrt_version}; engines load only into the version that built "
            "them: rebuild with `vlm-export engine` where it is served"
        )
    if sidecar.compute_capability != host.compute_capability:
        raise EngineMismatchError(
            f"{sidecar.component}: the engine was built for compute capability {sidecar.compute_capability} "
            f"({sidecar.gpu_name}), this GPU is {host.compute_capability} ({host.gpu_name}); "
            "rebuild with `vlm-export engine` on this GPU"
        )


def check_precision_supported(component: str, precision: str, host: EngineHost) -> None:
    """``EngineMismatchError`` when ``host``'s GPU has no tensor cores for ``precision``."""
    needed = MIN_COMPUTE_CAPABILITY.get(precision)
    major, minor = (int(part) for part in host.compute_capability.split("."))
    if needed is not None and (major, minor) < needed:
        raise EngineMismatchError(
            f"{component}: {precision} engines need compute capability {needed[0]}.{needed[1]} or newer; "
            f"{host.gpu_name} is {host.compute_capability}"
        )


def is_current(sidecar: EngineSidecar, expected: EngineSidecar) -> bool:
    """Whether an engine built as ``sidecar`` says is what building ``expected`` now would make."""
    keys = ("tensorrt_version", "compute_capability", "precision", "workspace_bytes", "profiles", "source_onnx_sha256")
    return all(getattr(sidecar, key) == getattr(expected, key) for key in keys)
