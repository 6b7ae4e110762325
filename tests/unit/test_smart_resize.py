"""serving.smart_resize equals Qwen2VLImageProcessor (PIL backend) on tiny-qwen2-vl's saved settings, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoImageProcessor

from serving.pixel_budget import PixelBudget
from serving.smart_resize import PatchImageProcessor, PatchSettings, smart_resize
from tests.images import scene

pytestmark = pytest.mark.timeout(120)

# (width, height): scaled up to the minimum, kept, wide, tall, scaled down to the maximum, odd sizes.
SIZES = [(20, 20), (96, 80), (150, 40), (30, 110), (300, 300), (1000, 20), (57, 83)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_patches_and_grids_equal_the_pil_image_processor_bits(tiny_qwen2_vl: Path, width: int, height: int) -> None:
    reference = AutoImageProcessor.from_pretrained(tiny_qwen2_vl, backend="pil")
    image = scene(width, height, seed=width * height)
    expected = reference(images=[image], return_tensors="np")
    patches, grid = PatchImageProcessor(PatchSettings.read(tiny_qwen2_vl))(image)
    assert grid.tolist() == expected["image_grid_thw"][0].tolist()
    assert patches.dtype == np.float32
    np.testing.assert_array_equal(patches, expected["pixel_values"])


def test_token_counts_are_the_merged_grid(tiny_qwen2_vl: Path) -> None:
    settings = PatchSettings.read(tiny_qwen2_vl)
    for width, height in SIZES:
        _, grid = PatchImageProcessor(settings)(scene(width, height))
        assert settings.tokens(height, width) == grid.prod() // settings.merge_size**2


def test_an_image_too_thin_is_refused_with_the_limit() -> None:
    with pytest.raises(ValueError, match="aspect ratio must be at most 200, got 4020 x 20"):
        smart_resize(20, 4020, 28, 56 * 56, 28 * 28 * 64)


# (width, height, min_pixels, max_pixels): fewer tokens than the checkpoint's maximum, more than its minimum, more
# than its maximum (a request may go past it within the export's cap).
BUDGETS = [(300, 300, 28 * 28, 28 * 28 * 16), (20, 20, 28 * 28 * 20, 28 * 28 * 64), (600, 400, 3136, 28 * 28 * 150)]


@pytest.mark.parametrize(("width", "height", "low", "high"), BUDGETS)
def test_a_requests_budget_equals_the_processors_min_and_max_pixels_arguments(
    tiny_qwen2_vl: Path, width: int, height: int, low: int, high: int
) -> None:
    reference = AutoImageProcessor.from_pretrained(tiny_qwen2_vl, backend="pil")
    image = scene(width, height, seed=width + height)
    expected = reference(images=[image], min_pixels=low, max_pixels=high, return_tensors="np")
    settings = PatchSettings.read(tiny_qwen2_vl)
    patches, grid = PatchImageProcessor(settings)(image, PixelBudget(low, high))
    assert grid.tolist() == expected["image_grid_thw"][0].tolist()
    assert grid.tolist() != PatchImageProcessor(settings)(image)[1].tolist()  # the budget changed the grid
    np.testing.assert_array_equal(patches, expected["pixel_values"])
