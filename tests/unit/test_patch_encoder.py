"""The Qwen2-VL-family vision step runs each frame group in a call of its own: the same embeddings as the exported
tower given every image and video of a request in one call (tiny-qwen2-vl and tiny-qwen2.5-vl's exports, whose
attention spans a frame group, or a window in it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.families.base import ExportOptions
from export.families.qwen2_5_vl.family import Qwen2_5VLFamily
from export.families.qwen2_vl.family import Qwen2VLFamily
from serving.errors import InvalidInputError
from serving.manifest import ONNX_FILE
from serving.onnx_runner import OnnxRunner
from serving.triton_models.patch_encoder import PatchEncoder, frame_groups

pytestmark = pytest.mark.timeout(240)


def test_frame_groups_walk_every_group_of_every_grid_in_the_patches_order() -> None:
    groups = [(start, grid.tolist()) for start, grid in frame_groups(np.array([[1, 2, 4], [3, 4, 2], [1, 2, 2]]))]
    assert groups == [(0, [[1, 2, 4]]), (8, [[1, 4, 2]]), (16, [[1, 4, 2]]), (24, [[1, 4, 2]]), (32, [[1, 2, 2]])]


def encoder(vision: Path, largest: int | None = None) -> PatchEncoder:
    model = PatchEncoder()
    model.merge, model.largest, model.runner = 2, largest, OnnxRunner(vision / ONNX_FILE).open()
    return model


@pytest.mark.parametrize(("family", "preset"), [(Qwen2VLFamily, "tiny_qwen2_vl"), (Qwen2_5VLFamily, "tiny_qwen2_5_vl")])
def test_a_request_of_images_and_videos_gets_the_one_call_embeddings(
    family: type, preset: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    checkpoint = request.getfixturevalue(preset)
    assert all(report.passed for report in family().export(checkpoint, tmp_path, ExportOptions()))
    vision = next(tmp_path.glob("*_vision")) / "1"
    grids = np.array([[1, 6, 4], [3, 4, 6], [2, 8, 8]], dtype=np.int64)  # an image, a 6-frame and a 4-frame clip
    patches = np.random.default_rng(0).normal(size=(int(grids.prod(-1).sum()), 1176)).astype(np.float32)
    whole = OnnxRunner(vision / ONNX_FILE).open().run({"pixel_values": patches, "image_grid_thw": grids})
    split = encoder(vision).handle({"pixel_values": patches, "image_grid_thw": grids})["image_embeds"]
    assert split.shape == whole["image_embeds"].shape == (int(grids.prod(-1).sum()) // 4, split.shape[1])
    np.testing.assert_allclose(split, whole["image_embeds"], rtol=0, atol=1e-5)


def test_a_profile_bounds_each_frame_group_not_a_whole_video(tiny_qwen2_vl: Path, tmp_path: Path) -> None:
    """On the GPU targets TensorRT's profile bounds one call of the tower: a long clip of frames within it is served,
    one frame past it is refused by name."""
    assert all(report.passed for report in Qwen2VLFamily().export(tiny_qwen2_vl, tmp_path, ExportOptions()))
    model = encoder(next(tmp_path.glob("*_vision")) / "1", largest=64)
    clip = np.array([[8, 8, 8]], dtype=np.int64)  # 8 frame groups of 64 patches: 512 in all, each call 64
    patches = np.zeros((512, 1176), dtype=np.float32)
    assert model.handle({"pixel_values": patches, "image_grid_thw": clip})["image_embeds"].shape[0] == 512 // 4
    wide = np.array([[1, 8, 10]], dtype=np.int64)
    with pytest.raises(InvalidInputError, match=r"^image_grid_thw: .* at most 64 patches here, got 80$"):
        model.handle({"pixel_values": np.zeros((80, 1176), dtype=np.float32), "image_grid_thw": wide})
