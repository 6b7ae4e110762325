"""The LLaVA-NeXT export and its anyres steps off the server: the tower and projector to ONNX with parity, the
packing step's artifacts, and the served preprocessing and packing equal to Hugging Face's on images whose sizes
pick different grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoConfig, AutoProcessor, LlavaNextForConditionalGeneration

from export.families.llava_next.exporter import check_servable, export_llava_next
from export.families.llava_next.family import anyres_grid
from export.parity import ParityReport
from serving.anyres import AnyresGrid, read_newline
from serving.image_processor import ImageProcessor
from serving.manifest import ONNX_FILE
from serving.onnx_runner import OnnxRunner
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR
from tests.reference import LlavaReference

# (width, height) -> the grid (rows, columns) tiny-llava-next's pinpoints pick for it
SIZES = {(64, 64): (2, 2), (100, 40): (1, 2), (40, 100): (2, 1), (33, 31): (1, 2), (300, 200): (2, 2), (17, 90): (2, 1)}


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_vision_tower_and_projector_pass_parity_on_a_requests_worth_of_tiles(
    exported_llava_next: list[ParityReport],
) -> None:
    assert [r.component for r in exported_llava_next] == ["llava_next_vision", "llava_next_projector"]
    for report in exported_llava_next:
        assert report.passed, report.summary()
        assert {case.batch_size for case in report.cases} == {1, 3, 20}


def test_the_packing_step_gets_the_checkpoints_grid_and_newline_vector(
    exported_llava_next: list[ParityReport], model_repository: Path, tiny_llava_next: Path
) -> None:
    folder = model_repository / "llava_next_pack" / "1"
    assert json.loads((folder / "packing.json").read_text()) == {
        "image_grid_pinpoints": [[32, 64], [64, 32], [64, 64]],
        "tile_size": 32,
        "patches_per_side": 4,
    }
    model = LlavaNextForConditionalGeneration.from_pretrained(tiny_llava_next)
    assert np.array_equal(read_newline(folder), model.model.image_newline.detach().numpy())


@pytest.mark.parametrize(("size", "grid"), SIZES.items(), ids=str)
def test_served_tiles_equal_hugging_faces_pixel_values_and_pick_the_same_grid(
    exported_llava_next: list[ParityReport],
    model_repository: Path,
    tiny_llava_next: Path,
    size: tuple[int, int],
    grid: tuple[int, int],
) -> None:
    ours = ImageProcessor.from_folder(model_repository / "llava_next_preprocess" / "1" / IMAGE_PROCESSOR_DIR)
    tiling = ours.anyres_grid()
    assert tiling is not None
    image = picture(*size)
    assert tiling.grid(size[1], size[0]) == grid
    expected = AutoProcessor.from_pretrained(tiny_llava_next, backend="pil").image_processor(images=[image])
    assert list(expected["image_sizes"][0]) == [size[1], size[0]]
    assert np.array_equal(ours.tiles(image, tiling), np.asarray(expected["pixel_values"][0]))  # bit for bit


def test_the_exported_towers_tiles_packed_equal_hugging_faces_image_features(
    exported_llava_next: list[ParityReport],
    model_repository: Path,
    tiny_llava_next: Path,
    llava_next_reference: LlavaReference,
) -> None:
    """The served chain off the server: tiles -> ONNX tower -> ONNX projector -> packing, for each grid."""
    processor = ImageProcessor.from_folder(model_repository / "llava_next_preprocess" / "1" / IMAGE_PROCESSOR_DIR)
    grid = AnyresGrid.read(model_repository / "llava_next_pack" / "1")
    newline = read_newline(model_repository / "llava_next_pack" / "1")
    images = [picture(*size, seed=i) for i, size in enumerate(SIZES)]
    expected = llava_next_reference.packed_image_embeds(images)
    with (
        OnnxRunner(model_repository / "llava_next_vision" / "1" / ONNX_FILE) as vision,
        OnnxRunner(model_repository / "llava_next_projector" / "1" / ONNX_FILE) as projector,
    ):
        for image, reference in zip(images, expected, strict=True):
            tiles = processor.tiles(image, processor.anyres_grid() or grid)
            features = vision.run({"pixel_values": tiles})["image_features"]
            packed = grid.pack(
                projector.run({"image_features": features})["image_embeds"], image.height, image.width, newline
            )
            assert packed.shape == tuple(reference.shape) == (grid.image_tokens(image.height, image.width), 64)
            assert np.allclose(packed, reference.numpy(), atol=1e-5)


def test_packing_moves_the_tiles_features_exactly_as_hugging_face_does(tiny_llava_next: Path) -> None:
    """The same tile embeddings in, bit-equal packed embeddings out (pack_image_features only moves values)."""
    import torch

    model = LlavaNextForConditionalGeneration.from_pretrained(tiny_llava_next).eval()
    grid = anyres_grid(model.config)
    for (width, height), (rows, columns) in SIZES.items():
        tiles = torch.randn(1 + rows * columns, 16, 64)
        with torch.inference_mode():
            expected, lengths = model.model.pack_image_features(
                [tiles], torch.tensor([[height, width]]), "default", model.model.image_newline
            )
        newline = model.model.image_newline.detach().numpy()
        packed = grid.pack(tiles.numpy(), height, width, newline)
        assert np.array_equal(packed, expected[0].numpy())
        assert lengths.tolist() == [grid.image_tokens(height, width)]


def test_what_the_packing_cannot_serve_is_refused_before_any_export(tiny_llava_next: Path, tmp_path: Path) -> None:
    config = AutoConfig.from_pretrained(tiny_llava_next)
    config.image_grid_pinpoints = [[32, 48]]
    with pytest.raises(ValueError, match=r"\[32, 48\] is not a whole number of 32-pixel tiles"):
        check_servable(config)
    config = AutoConfig.from_pretrained(tiny_llava_next)
    config.image_grid_pinpoints = [[96, 96]]  # 10 tiles an image: 4 images would not fit the tower's batch
    with pytest.raises(ValueError, match="may take 10 tiles"):
        check_servable(config)
    config = AutoConfig.from_pretrained(tiny_llava_next)
    config.vision_feature_select_strategy = "full"
    config.save_pretrained(tmp_path)
    for name in ("model.safetensors",):
        (tmp_path / name).symlink_to(tiny_llava_next / name)
    with pytest.raises(ValueError, match="vision_feature_select_strategy"):
        export_llava_next(tmp_path, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
