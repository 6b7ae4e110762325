"""TensorRT optimisation profiles from a component's spec: the same spec that gives the ONNX export its
dynamic batch axis (1 .. ``max_batch_size``) and dynamic axes, and the Triton config its ``max_batch_size``.

Named dims (``image_size``, ``embed_dim``, ``image_tokens``) are symbolic in the ONNX graph so one config
serves any checkpoint, but an engine is built for one checkpoint: they are pinned (min = opt = max) to the
exported checkpoint's values, which the component's manifest records. The batch axis varies, and so does each
dynamic axis (a text's length: the spec's min .. opt .. the checkpoint's context length).
"""

from __future__ import annotations

from dataclasses import dataclass

from export.specs import OnnxComponentSpec
from serving.manifest import ComponentManifest

MIN_BATCH = 1  # as the ONNX export's dynamic batch axis: Dim("batch", min=1, max=max_batch_size)


@dataclass(frozen=True)
class ShapeRange:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError("profile shapes must have the same rank")
        if any(not 1 <= low <= mid <= high for low, mid, high in zip(self.min, self.opt, self.max, strict=True)):
            raise ValueError(f"profile shapes must satisfy 1 <= min <= opt <= max, got {self}")

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def opt_batch_size(max_batch_size: int) -> int:
    """The batch TensorRT tunes kernels for: the largest power of two up to half the maximum, since the
    dynamic batcher's short queue delay mostly forms mid-sized batches (full ones only under saturation)."""
    target = max(MIN_BATCH, max_batch_size // 2)
    return 1 << (target.bit_length() - 1)


def sizes_from_manifest(spec: OnnxComponentSpec, manifest: ComponentManifest) -> dict[str, int]:
    """The values of the spec's named input dims for the exported checkpoint (its manifest's concrete shapes)."""
    exported = {tensor.name: tensor for tensor in manifest.inputs}
    sizes: dict[str, int] = {}
    for tensor in spec.inputs:
        if tensor.name not in exported:
            raise ValueError(f"{spec.name}: the export has no input {tensor.name}; export the checkpoint again")
        shape = exported[tensor.name].max_shape or exported[tensor.name].shape
        if len(shape) != len(tensor.dims):
            raise ValueError(f"{spec.name}.{tensor.name}: exported rank {len(shape)}, the spec says {len(tensor.dims)}")
        for declared, value in zip(tensor.dims, shape, strict=True):
            axis = spec.axis(declared) if isinstance(declared, str) else None
            if axis is not None:
                declared = axis.max  # a dynamic axis: the manifest's largest shape holds its maximum
            if isinstance(declared, str):
                if sizes.setdefault(declared, value) != value:
                    raise ValueError(f"{spec.name}: {declared} is both {sizes[declared]} and {value} in the export")
            elif declared not in (-1, value):
                raise ValueError(f"{spec.name}.{tensor.name}: exported dim {value}, the spec says {declared}")
    return sizes


def engine_profile(spec: OnnxComponentSpec, sizes: dict[str, int]) -> dict[str, ShapeRange]:
    """One profile for the engine: every input's (min, opt, max) shape including the batch axis."""
    profile = {}
    for tensor in spec.inputs:
        if -1 in tensor.dims:
            raise ValueError(f"{spec.name}.{tensor.name}: a free (-1) dim has no range to build an engine profile for")
        low, mid, high = spec.item_shapes(tensor, sizes)
        profile[tensor.name] = ShapeRange(
            (MIN_BATCH, *low), (opt_batch_size(spec.max_batch_size), *mid), (spec.max_batch_size, *high)
        )
    return profile
