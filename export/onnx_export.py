"""torch -> ONNX for one component, its interface taken from the component's spec.

The batch axis is dynamic (up to the spec's ``max_batch_size``), and so is each of the spec's dynamic axes
(a text's length, up to the checkpoint's context). Other dims the spec names (``image_size``, ``embed_dim``)
are exported at the checkpoint's value and then declared symbolic on the graph's inputs and outputs,
matching the ``-1`` of the Triton config, so Triton's native onnxruntime backend accepts the checked-in
config for any checkpoint of the family.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from export.specs import OnnxComponentSpec, TensorSpec
from serving.manifest import ONNX_FILE

DEFAULT_OPSET = 18


def export_component(
    module: torch.nn.Module,
    example_inputs: dict[str, torch.Tensor],
    spec: OnnxComponentSpec,
    sizes: dict[str, int],
    out_dir: Path,
    opset: int = DEFAULT_OPSET,
) -> Path:
    batch = torch.export.Dim("batch", min=1, max=spec.max_batch_size)
    axes = {}
    for axis in spec.dynamic_axes:
        low, _, high = axis.resolve(sizes)
        axes[axis.name] = torch.export.Dim(axis.name, min=low, max=high)
    dynamic_shapes = {
        t.name: {0: batch, **{i + 1: axes[d] for i, d in enumerate(t.dims) if d in axes}} for t in spec.inputs
    }
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about every optional torchvision op it skips
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draft = Path(scratch) / ONNX_FILE
        torch.onnx.export(
            module.eval(),
            args=(),
            kwargs=example_inputs,
            f=str(draft),
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            dynamo=True,
            external_data=True,
            verbose=False,
        )
        model = onnx.load(str(draft))
    exporter_log.setLevel(previous_level)
    _declare_symbolic_dims(model, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ONNX_FILE
    for stale in (target, out_dir / f"{ONNX_FILE}.data"):
        stale.unlink(missing_ok=True)  # onnx appends to an existing external-data file
    onnx.save_model(
        model, str(target), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{ONNX_FILE}.data"
    )
    onnx.checker.check_model(str(target))
    return target


def _declare_symbolic_dims(model: onnx.ModelProto, spec: OnnxComponentSpec) -> None:
    by_name: dict[str, TensorSpec] = {t.name: t for t in (*spec.inputs, *spec.outputs)}
    for value in (*model.graph.input, *model.graph.output):
        tensor = by_name[value.name]
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(tensor.dims) + 1:
            raise ValueError(f"{spec.name}.{value.name}: exported rank {len(dims)} does not match the spec")
        dims[0].Clear()
        dims[0].dim_param = "batch"
        for dim, declared in zip(dims[1:], tensor.dims, strict=True):
            if isinstance(declared, str):
                dim.Clear()
                dim.dim_param = declared
    del model.graph.value_info[:]  # inner shape hints would pin the dims made symbolic above
