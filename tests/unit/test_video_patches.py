"""The video patches equal ``Qwen2VLVideoProcessor``'s bit for bit: resized (up and down), an odd frame count padded
with its last frame, the grid (frame groups, rows, columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.pixel_budget import PixelBudget
from serving.video_patches import VideoPatchProcessor, read_video_settings
from tests.images import scene

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("width", "height", "count"), [(64, 48, 3), (56, 56, 4), (400, 300, 2), (30, 90, 1)])
def test_patches_equal_the_video_processors(tiny_qwen2_vl: Path, width: int, height: int, count: int) -> None:
    from transformers import AutoVideoProcessor

    frames = [np.asarray(scene(width, height, seed=80 + i).convert("RGB")) for i in range(count)]
    reference = AutoVideoProcessor.from_pretrained(tiny_qwen2_vl)(
        videos=[np.stack(frames)], return_tensors="np", cap_pixels_per_frame=False
    )
    patches, grid = VideoPatchProcessor(read_video_settings(tiny_qwen2_vl))(frames)
    assert grid.tolist() == reference["video_grid_thw"][0].tolist()
    assert grid[0] == (count + 1) // 2
    np.testing.assert_array_equal(patches, reference["pixel_values_videos"])


@pytest.mark.parametrize(("low", "high"), [(28 * 28, 28 * 28 * 12), (28 * 28 * 100, 28 * 28 * 120)])
def test_a_requests_budget_equals_the_video_processors_min_and_max_pixels_arguments(
    tiny_qwen2_vl: Path, low: int, high: int
) -> None:
    from transformers import AutoVideoProcessor

    frames = [np.asarray(scene(200, 150, seed=90 + i).convert("RGB")) for i in range(2)]
    reference = AutoVideoProcessor.from_pretrained(tiny_qwen2_vl)(
        videos=[np.stack(frames)], min_pixels=low, max_pixels=high, return_tensors="np", cap_pixels_per_frame=False
    )
    processor = VideoPatchProcessor(read_video_settings(tiny_qwen2_vl))
    patches, grid = processor(frames, PixelBudget(low, high))
    assert grid.tolist() == reference["video_grid_thw"][0].tolist()
    assert grid.tolist() != processor(frames)[1].tolist()
    np.testing.assert_array_equal(patches, reference["pixel_values_videos"])
