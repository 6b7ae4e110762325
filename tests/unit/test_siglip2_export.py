"""The SigLIP2 NaFlex export on a random SigLIP2 the tests build: each tower's ONNX equals PyTorch on batches that mix
patch grids, the vision graph equals Hugging Face's ``Siglip2Model`` on real images of several aspect ratios in one
batch (no grid baked in by tracing), and the served preprocessing gives the checkpoint's processor's patches, mask and
grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, Siglip2Model
from transformers.models.siglip2.image_processing_pil_siglip2 import get_image_size_for_max_num_patches
from transformers.models.siglip2.modeling_siglip2 import Siglip2VisionEmbeddings

from export.families import family_for_checkpoint
from export.families.siglip2.feeds import naflex_inputs
from export.families.siglip2.naflex import resized_positions
from export.families.siglip2.spec import SIGLIP2
from export.parity import ParityReport
from serving.naflex_processor import NaflexProcessor, target_size
from serving.onnx_runner import OnnxRunner
from tests.images import scene

# (width, height): square, wide, tall, odd, tiny, 1x1, at the aspect-ratio limit, larger than the budget
SIZES = [(48, 48), (200, 31), (37, 90), (97, 33), (5, 3), (1, 1), (400, 20), (640, 480)]


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _image(width: int, height: int) -> Image.Image:
    return scene(width, height, seed=width + height) if min(width, height) > 16 else Image.new("RGB", (width, height))


def test_a_siglip2_checkpoint_is_the_siglip2_family(tiny_siglip2: Path) -> None:
    choice = family_for_checkpoint(tiny_siglip2)
    assert choice.family.name == "siglip2" and "Siglip2Model" in choice.reason


def test_both_towers_pass_parity_on_batches_that_mix_patch_grids(exported_siglip2: list[ParityReport]) -> None:
    assert [r.component for r in exported_siglip2] == ["siglip2_vision", "siglip2_text"]
    for report, spec in zip(exported_siglip2, (SIGLIP2.vision, SIGLIP2.text), strict=True):
        assert report.passed, report.summary()
        assert {case.batch_size for case in report.cases} >= {1, spec.max_batch_size}
        assert report.max_abs_diff < 1e-4 and report.min_cosine > 0.9999
    grids = naflex_inputs(64, 768, (3,))[0]["spatial_shapes"]
    assert len({tuple(grid) for grid in grids}) == 3  # the traced example (2 images) and checks mix grids


def test_the_vision_graph_takes_patches_a_mask_and_grids_with_a_dynamic_batch(model_repository: Path) -> None:
    vision = onnx.load(str(model_repository / "siglip2_vision/1/model.onnx"), load_external_data=False)
    assert [_dims(value) for value in vision.graph.input] == [
        ["batch", "max_num_patches", "patch_dim"],
        ["batch", "max_num_patches"],
        ["batch", 2],
    ]
    assert _dims(vision.graph.output[0]) == ["batch", "embed_dim"]
    text = onnx.load(str(model_repository / "siglip2_text/1/model.onnx"), load_external_data=False)
    assert [_dims(value) for value in text.graph.input] == [["batch", "context_length"]] * 2


def test_the_exported_vision_tower_equals_hugging_face_on_images_of_several_aspect_ratios(
    model_repository: Path, tiny_siglip2: Path
) -> None:
    processor = AutoProcessor.from_pretrained(tiny_siglip2, backend="pil").image_processor
    inputs = processor(images=[_image(*size) for size in SIZES], return_tensors="pt")
    assert len({tuple(grid) for grid in inputs["spatial_shapes"].tolist()}) >= 6
    model = Siglip2Model.from_pretrained(tiny_siglip2).eval()
    with torch.inference_mode():
        theirs = torch.nn.functional.normalize(model.get_image_features(**inputs).pooler_output, dim=-1).numpy()
    with OnnxRunner(model_repository / "siglip2_vision/1/model.onnx") as runner:
        ours = runner.run({name: tensor.numpy() for name, tensor in inputs.items()})["image_embeds"]
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() > 0.9999
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("side", [4, 16])
def test_position_embeddings_are_resized_as_hugging_face_resizes_them_for_every_grid(side: int) -> None:
    """Every grid of up to 12 x 12 patches, padded to 150, against ``Siglip2VisionEmbeddings``' loop. One-column
    grids taller than one row are left out: PyTorch's CPU antialiased resize repeats the first row there (the formula,
    and the GPU kernel, do not); the preprocess never makes one for a checkpoint's usual budget (MAX_ASPECT_RATIO)."""
    grid = torch.randn(side, side, 8, generator=torch.Generator().manual_seed(side))
    shapes = torch.tensor([(h, w) for h in range(1, 13) for w in range(1, 13) if w > 1 or h == 1])
    theirs = Siglip2VisionEmbeddings.resize_positional_embeddings(grid, shapes, 150)
    torch.testing.assert_close(resized_positions(grid, shapes, 150), theirs, atol=1e-5, rtol=1e-5)


def test_the_patch_budget_search_equals_hugging_faces() -> None:
    sizes = [(h, w) for h in (1, 3, 16, 31, 100, 257, 1000, 4000) for w in (1, 2, 17, 64, 333, 2048)]
    for budget in (1, 64, 256, 1024):
        for height, width in sizes:
            assert target_size(height, width, 16, budget) == get_image_size_for_max_num_patches(
                height, width, 16, budget
            )


@pytest.mark.parametrize("size", SIZES)
def test_served_preprocessing_gives_the_processors_patches_mask_and_grid(
    model_repository: Path, tiny_siglip2: Path, size: tuple[int, int]
) -> None:
    image = _image(*size)
    ours = NaflexProcessor.from_folder(model_repository / "siglip2_preprocess/1/image_processor").tensors(image)
    processor = AutoProcessor.from_pretrained(tiny_siglip2, backend="pil")
    theirs = processor(images=[image], max_num_patches=64, return_tensors="np")
    assert ours["pixel_values"].shape == (64, 3 * 16 * 16)
    for name in ("pixel_values", "pixel_attention_mask", "spatial_shapes"):
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name], theirs[name][0], err_msg=name)


def test_a_naflex_setting_the_server_does_not_implement_is_refused_by_name(tmp_path: Path) -> None:
    from serving.image_processor import PREPROCESSOR_FILE

    (tmp_path / PREPROCESSOR_FILE).write_text(
        '{"image_processor_type": "Siglip2ImageProcessor", "patch_size": 16, "do_pad": true}'
    )
    with pytest.raises(ValueError, match="settings not supported: do_pad"):
        NaflexProcessor.from_folder(tmp_path)
