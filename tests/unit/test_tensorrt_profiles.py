"""TensorRT optimisation profiles come from the component specs: the batch axis spans what the ONNX export
and the Triton config allow, and the checkpoint's named dims are pinned to the exported values."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from export.families import FAMILIES
from export.families.clip.spec import CLIP_TEXT
from export.families.dual_encoder import TEXT_OPT_TOKENS
from export.parity import ParityReport
from export.repository import VERSION
from export.specs import OnnxComponentSpec, TensorSpec
from export.tensorrt_profiles import ShapeRange, engine_profile, opt_batch_size, sizes_from_manifest
from export.triton_config import onnx_component_config
from serving.manifest import ONNX_FILE, ComponentManifest

FUSED = ("llava_vision", "llava_next_vision")  # a VLM's vision tower ending with its projector
COMPONENTS = {
    f"{spec.name}{'_fused' if spec.outputs[0].name == 'image_embeds' and spec.name in FUSED else ''}": spec
    for family in FAMILIES
    for spec in family.encoder_variants()
}
SIZES = {
    "image_size": 336,
    "embed_dim": 768,
    "context_length": 77,
    "max_token_id": 49407,
    "image_tokens": 576,
    "vision_hidden": 1024,
    "text_hidden": 4096,
    "max_num_patches": 256,
    "patch_dim": 768,
}


def test_every_exported_component_is_covered() -> None:
    assert sorted(COMPONENTS) == [
        "clip_text",
        "clip_vision",
        "llava_next_projector",
        "llava_next_vision",
        "llava_next_vision_fused",
        "llava_projector",
        "llava_vision",
        "llava_vision_fused",
        "siglip2_text",
        "siglip2_vision",
        "siglip_text",
        "siglip_vision",
    ]


@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_each_component_profile_spans_batch_one_to_the_triton_max_batch_size(key: str) -> None:
    spec = COMPONENTS[key]
    profile = engine_profile(spec, SIZES)
    triton_max = onnx_component_config(spec, "gpu").max_batch_size
    assert set(profile) == {tensor.name for tensor in spec.inputs}
    for tensor in spec.inputs:
        shapes = profile[tensor.name]
        assert (shapes.min[0], shapes.opt[0], shapes.max[0]) == (1, opt_batch_size(triton_max), triton_max)
        if not spec.has_dynamic_axis(tensor):
            assert shapes.min[1:] == shapes.opt[1:] == shapes.max[1:] == tensor.resolve(SIZES)


def test_the_text_engine_spans_one_token_to_the_context_length_and_tunes_for_short_captions() -> None:
    profile = engine_profile(CLIP_TEXT, SIZES)
    for name in ("input_ids", "attention_mask"):
        assert profile[name] == ShapeRange((1, 1), (32, TEXT_OPT_TOKENS), (64, 77))


@pytest.mark.parametrize(("max_batch", "opt"), [(1, 1), (2, 1), (16, 8), (32, 16), (48, 16), (64, 32)])
def test_the_opt_batch_is_the_largest_power_of_two_up_to_half_the_maximum(max_batch: int, opt: int) -> None:
    assert opt_batch_size(max_batch) == opt


def test_a_free_dim_has_no_range_and_is_refused_by_name() -> None:
    spec = OnnxComponentSpec(
        "free", (TensorSpec("tokens", "int64", (-1,)),), (TensorSpec("out", "float32", (4,)),), max_batch_size=8
    )
    with pytest.raises(ValueError, match=r"free\.tokens: a free \(-1\) dim"):
        engine_profile(spec, {})


def test_shape_ranges_refuse_min_above_max() -> None:
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeRange((4, 3), (2, 3), (8, 3))


def _onnx_input_dims(path: Path) -> dict[str, list[str | int]]:
    model = onnx.load(str(path), load_external_data=False)
    inputs = model.graph.input
    return {value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim] for value in inputs}


def test_profiles_of_real_exports_match_the_onnx_dynamic_axes_and_the_manifest(
    repository_copy: Path,
    exported_clip: list[ParityReport],
    exported_llava: list[ParityReport],
    exported_siglip: list[ParityReport],
    exported_siglip2: list[ParityReport],
) -> None:
    encoders = ("clip_vision", "clip_text", "llava_vision", "llava_projector", "siglip_vision", "siglip_text")
    for name in (*encoders, "siglip2_vision", "siglip2_text"):
        folder = repository_copy / name / VERSION
        manifest = ComponentManifest.read(folder)
        spec = COMPONENTS[name]
        profile = engine_profile(spec, sizes_from_manifest(spec, manifest))
        onnx_dims = _onnx_input_dims(folder / ONNX_FILE)
        for tensor in manifest.inputs:
            shapes = profile[tensor.name]
            assert onnx_dims[tensor.name][0] == "batch"
            assert (shapes.min[0], shapes.max[0]) == (1, manifest.max_batch_size)
            assert list(shapes.max[1:]) == (tensor.max_shape or tensor.shape)
            item_ranges = enumerate(zip(shapes.min[1:], shapes.max[1:], strict=True))
            varying = {i for i, (low, high) in item_ranges if low != high}
            assert varying == set(tensor.dynamic_axes.values())  # besides the batch, only the dynamic axes vary
            for axis, position in tensor.dynamic_axes.items():
                assert onnx_dims[tensor.name][1 + position] == axis
            assert len(onnx_dims[tensor.name]) == len(shapes.max)


def test_a_manifest_that_disagrees_with_the_spec_is_refused(repository_copy: Path, exported_clip: list) -> None:
    manifest = ComponentManifest.read(repository_copy / "clip_vision" / VERSION)
    with pytest.raises(ValueError, match="clip_text: the export has no input input_ids"):
        sizes_from_manifest(COMPONENTS["clip_text"], manifest)
