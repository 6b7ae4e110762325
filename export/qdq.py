"""Explicitly quantized (QDQ) ONNX models, from which TensorRT builds int8 and fp8 engines.

TensorRT 10 builds int8 and fp8 engines from QuantizeLinear / DequantizeLinear pairs in the ONNX graph (explicit
quantization; its implicit calibrators are deprecated). ONNX Runtime's static quantization writes them
(``quantize_static``, ``QuantFormat.QDQ``) in the scheme TensorRT's explicit quantization takes: symmetric (every zero
point 0), activations per tensor, weights per output channel for int8 and per tensor for fp8 E4M3. Only the spec's
``qdq_ops`` with a constant weight are quantized, the layers' GEMMs; the rest of the graph stays float and the engine
runs it in float16 (export/tensorrt_engine.py's builder flags).

Calibration runs on the export's own parity inputs, its largest batch (the last feed): noise pixels of the tower's
size, drawn after those of the smaller batches (which calibration therefore never sees), the tower's features on them
for a projector, and the tokenised parity sentences for a text tower (the same sentences its parity is checked on).

The QDQ model also runs on ONNX Runtime's CPU provider, fake-quantized (each Q/DQ pair rounds its tensor as the engine
will), so its accuracy is checked against PyTorch at export, before any GPU is involved.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import onnx

from export.specs import OnnxComponentSpec

Feed = dict[str, npt.NDArray[Any]]
PROTOBUF_LIMIT = 2 << 30  # one ONNX file holds at most 2 GiB; past it, weights go to external data


@dataclass(frozen=True)
class QdqScheme:
    quant_type: str  # an onnxruntime.quantization.QuantType member
    per_channel: bool  # the weights' scales: one per output channel, or one per tensor
    calibration: str  # an onnxruntime.quantization.CalibrationMethod member


# int8: min-max ranges, weights per channel (TensorRT takes per-channel weight scales, per-tensor activation ones).
# fp8: per tensor, as TensorRT's fp8 GEMMs scale them; ONNX Runtime calibrates float8 only with its Distribution
# method (a scale from each tensor's standard deviation).
SCHEMES = {
    "int8": QdqScheme("QInt8", per_channel=True, calibration="MinMax"),
    "fp8": QdqScheme("QFLOAT8E4M3FN", per_channel=False, calibration="Distribution"),
}
QDQ_PRECISIONS = tuple(SCHEMES)


def qdq_file(precision: str) -> str:
    """The QDQ model's file name, beside the float32 ``model.onnx`` (Triton's onnxruntime backend loads only that)."""
    if precision not in SCHEMES:
        raise ValueError(f"a QDQ model's precision must be one of {', '.join(QDQ_PRECISIONS)}, got {precision!r}")
    return f"model.{precision}-qdq.onnx"


def weight_gemms(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """The nodes of ``op_types`` with a constant operand (an initializer): the layers' weights, not the attention's
    products of two activations."""
    constants = {initializer.name for initializer in model.graph.initializer}
    return [node.name for node in model.graph.node if node.op_type in op_types and constants.intersection(node.input)]


class _Items:
    """The calibration feeds one item at a time, in the ranges ONNX Runtime's strided calibration asks for, so a
    real-size tower's intermediate tensors are never held for a whole batch (an ONNX Runtime
    ``CalibrationDataReader``, duck-typed: onnxruntime.quantization is imported only when a model is quantized)."""

    def __init__(self, feeds: list[Feed]) -> None:
        self._items = [{k: v[i : i + 1] for k, v in feed.items()} for feed in feeds for i in range(_batch(feed))]
        self.set_range(0, len(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next = iter(self._items[start_index:end_index])

    def get_next(self) -> Feed | None:
        return next(self._next, None)


def _batch(feed: Feed) -> int:
    return int(next(iter(feed.values())).shape[0])


def _onnx_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + ".data")) if p.is_file())


def make_qdq(folder: Path, source: str, spec: OnnxComponentSpec, precision: str, calibration: list[Feed]) -> Path:
    """Write ``folder``'s QDQ model at ``precision`` from its float32 ``source``, calibrated on ``calibration``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    scheme = SCHEMES[precision]
    model_path = folder / source
    nodes = weight_gemms(onnx.load(str(model_path), load_external_data=False), spec.qdq_ops)
    if not nodes:
        raise ValueError(f"{spec.name}: no {'/'.join(spec.qdq_ops)} node with a constant weight to quantize")
    target = folder / qdq_file(precision)
    quant_type = getattr(QuantType, scheme.quant_type)
    options: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "CalibStridedMinMax": 1,  # every calibrator, one item at a time (ranges and histograms merge across items)
    }
    # Both warn that ONNX Runtime's pre-processing should come first (it fuses for ONNX Runtime's kernels, not
    # TensorRT's) and the Distribution calibrator prints its settings: kept out of vlm-export's report.
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                model_path,
                target,
                _Items(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=quant_type,
                weight_type=quant_type,
                per_channel=scheme.per_channel,
                op_types_to_quantize=list(spec.qdq_ops),  # also what the calibrator measures
                nodes_to_quantize=nodes,
                calibrate_method=getattr(CalibrationMethod, scheme.calibration),
                use_external_data_format=_onnx_bytes(model_path) >= PROTOBUF_LIMIT,
                extra_options=options,
            )
    finally:
        logging.disable(logging.NOTSET)
    return target
