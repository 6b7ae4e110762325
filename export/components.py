"""Family-neutral export steps: one component to ONNX with its parity report and manifest, and the
install of a staged export into a repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from export.onnx_export import export_component
from export.parity import ParityReport, check_parity
from export.precision import DEFAULT_PRECISION, budget, check_qdq_precision, quantize
from export.qdq import make_qdq
from export.specs import OnnxComponentSpec, TensorSpec
from serving.manifest import ComponentManifest, TensorManifest
from serving.onnx_runner import OnnxRunner


def _torch_runner(module: torch.nn.Module, output: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {output: module(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()}

    return run


def _tensor_manifest(spec: OnnxComponentSpec, tensor: TensorSpec, sizes: dict[str, int]) -> TensorManifest:
    value_range = tensor.resolve_range(sizes)
    axes = {d: i for i, d in enumerate(tensor.dims) if isinstance(d, str) and spec.axis(d) is not None}
    _, _, largest = spec.item_shapes(tensor, sizes)
    shape = [-1 if i in axes.values() else size for i, size in enumerate(largest)]
    return TensorManifest(
        tensor.name,
        tensor.dtype,
        shape,
        list(value_range) if value_range else None,
        dynamic_axes=axes,
        max_shape=list(largest) if axes else None,
        pad_value=tensor.resolve_pad(sizes) if axes else None,
    )


def export_encoder(
    module: torch.nn.Module,
    spec: OnnxComponentSpec,
    feeds: list[dict[str, np.ndarray]],
    sizes: dict[str, int],
    out_dir: Path,
    opset: int,
    precision: str = DEFAULT_PRECISION,
    qdq: str | None = None,
) -> list[ParityReport]:
    """Export ``module`` at ``precision`` into ``out_dir`` and check it against PyTorch float32 on ``feeds``, within
    the spec's budget for that precision. ``qdq`` (int8, fp8): also a QDQ model of the float32 export for TensorRT
    engines of that precision (export/qdq.py), checked against PyTorch within that precision's budget: its report
    follows the export's."""
    if qdq is not None:
        check_qdq_precision(qdq, precision)
    for tensor in spec.inputs:  # the graph is traced at the feeds' dtypes: they must be the ones it is served
        if feeds[-1][tensor.name].dtype != np.dtype(tensor.dtype):
            raise ValueError(
                f"{spec.name}: parity feed {tensor.name} is {feeds[-1][tensor.name].dtype}, not {tensor.dtype}"
            )
    example = {k: torch.from_numpy(v[:2]) for k, v in feeds[-1].items()}
    onnx_path = export_component(module, example, spec, sizes, out_dir, opset)
    if precision == "int8":
        onnx_path = quantize(out_dir, spec)
    reference = ("pytorch", _torch_runner(module, spec.outputs[0].name))
    with OnnxRunner(onnx_path, intra_op_threads=torch.get_num_threads()) as runner:
        reports = [
            check_parity(spec.name, reference, (f"onnxruntime {precision}", runner.run), feeds, budget(spec, precision))
        ]
    quantized = {}
    if qdq is not None:
        qdq_path = make_qdq(out_dir, onnx_path.name, spec, qdq, calibration=feeds[-1:])
        with OnnxRunner(qdq_path, intra_op_threads=torch.get_num_threads()) as runner:
            candidate = (f"onnxruntime {qdq} qdq", runner.run)
            reports.append(check_parity(spec.name, reference, candidate, feeds, budget(spec, qdq)))
        quantized[qdq] = {"file": qdq_path.name, "parity": reports[-1].to_dict()}
    ComponentManifest(
        name=spec.name,
        max_batch_size=spec.max_batch_size,
        inputs=[_tensor_manifest(spec, t, sizes) for t in spec.inputs],
        outputs=[_tensor_manifest(spec, t, sizes) for t in spec.outputs],
        parity=reports[0].to_dict(),
        precision=precision,
        qdq=quantized,
    ).write(out_dir)
    return reports


def install(staged: Path, target: Path) -> None:
    """Move a staged folder's files over ``target``'s (replacing files and folders of the same name)."""
    target.mkdir(parents=True, exist_ok=True)
    for item in staged.iterdir():
        destination = target / item.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        else:
            destination.unlink(missing_ok=True)
        shutil.move(str(item), str(destination))
