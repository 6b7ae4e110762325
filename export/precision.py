"""The precision an exported encoder runs at on CPU targets, and the step that makes it: ``fp32`` (the export as
it is) or ``int8`` (ONNX Runtime's dynamic quantization of the spec's chosen op types: weights int8 per channel,
activations quantized per batch at run time, so no calibration set is needed). Family-neutral: which ops a
component quantizes, and its accuracy budget, are in its spec.

``budget`` is every precision's parity bar, on CPU targets and for TensorRT engines alike (int8 and fp8 engines are
built from a QDQ model: export/qdq.py).

bfloat16 is refused on CPU targets: ONNX Runtime's CPU provider has no bfloat16 MatMul kernel (its bfloat16
fast-math GEMM is for Arm), so a bfloat16 graph fails to load, and bfloat16 weights cast to float32 at load run at
float32's speed (measured: ``REFUSED_ON_CPU``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from export.specs import OnnxComponentSpec, Tolerance
from serving.manifest import DEFAULT_PRECISION as DEFAULT_PRECISION  # re-exported: the exports default to it
from serving.manifest import ONNX_FILE

CPU_PRECISIONS = (DEFAULT_PRECISION, "int8")
# Why each precision that is not a CPU one is refused there, for the operator.
REFUSED_ON_CPU = {
    "bf16": (
        "bf16 is not faster on CPU targets: ONNX Runtime 1.32's CPU provider has no bfloat16 MatMul kernel, and "
        "clip-vit-base-patch32's vision tower with bfloat16 weights cast to float32 ran a batch of 8 in 2.09 s "
        "against float32's 2.05 s (medians of 12); int8 ran it in 0.60 s. Use int8, or bf16 for TensorRT engines "
        "(--runtime tensorrt)"
    ),
    "fp16": "fp16 is a TensorRT precision (--runtime tensorrt); on CPU targets use int8",
    "fp8": "fp8 is a TensorRT precision on Ada and Hopper GPUs (--runtime tensorrt); on CPU targets use int8",
}


def check_cpu_precision(precision: str) -> None:
    """``ValueError`` naming the field and the choices for a precision an ONNX Runtime export cannot make."""
    if precision in REFUSED_ON_CPU:
        raise ValueError(f"--precision {precision}: {REFUSED_ON_CPU[precision]}")
    if precision not in CPU_PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(CPU_PRECISIONS)} on CPU targets, got {precision!r}")


# Each precision's parity budget, a field of the component's spec: one bar per precision whatever runs it (an int8
# ONNX Runtime export and a TensorRT int8 engine are both held to ``int8_tolerance``).
_BUDGETS = {
    "fp32": "tolerance",
    "int8": "int8_tolerance",
    "fp8": "fp8_tolerance",
    "fp16": "fp16_tolerance",
    "bf16": "bf16_tolerance",
}


def check_qdq_precision(qdq: str, precision: str = DEFAULT_PRECISION) -> None:
    """``ValueError`` unless ``qdq`` is a QDQ model's precision (TensorRT int8 / fp8) and the ONNX export it is made
    from is float32."""
    from export.qdq import QDQ_PRECISIONS

    if qdq not in QDQ_PRECISIONS:
        raise ValueError(f"a QDQ model's precision must be one of {', '.join(QDQ_PRECISIONS)}, got {qdq!r}")
    if precision != DEFAULT_PRECISION:
        raise ValueError(f"--precision: a QDQ model is made from the {DEFAULT_PRECISION} export, not from {precision}")


def budget(spec: OnnxComponentSpec, precision: str) -> Tolerance:
    """The parity bar a component at ``precision`` must meet against float32 (PyTorch at export, the float32 ONNX
    model for an engine)."""
    if precision not in _BUDGETS:
        raise ValueError(f"precision must be one of {', '.join(_BUDGETS)}, got {precision!r}")
    tolerance: Tolerance = getattr(spec, _BUDGETS[precision])
    return tolerance


def quantize(folder: Path, spec: OnnxComponentSpec) -> Path:
    """Replace ``folder``'s float32 ``model.onnx`` (and its external data) with the int8 model, one file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = folder / ONNX_FILE
    target = folder / f"int8.{ONNX_FILE}"
    # It warns that ONNX Runtime's pre-processing (shape inference, graph fusions) should come first; without it
    # the budgets hold with room (clip-vit-base-patch32: cosine 0.99986 and 0.99936 against float32).
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=list(spec.int8_ops),
            per_channel=True,
            # 7-bit weights: on x86 CPUs without VNNI (this AVX2-only EPYC) ONNX Runtime's u8 x s8 kernel saturates
            # with full 8-bit per-channel weights (tiny CLIP's text tower: cosine 0.93 vs 0.997 with reduce_range);
            # an export is checked where it is built but served on whatever CPU a deployment has.
            reduce_range=True,
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.disable(logging.NOTSET)
    source.unlink()
    (folder / f"{ONNX_FILE}.data").unlink(missing_ok=True)
    return target.rename(source)
