"""The patch range of one call of a merged-patch vision tower (serving/patch_profile.py): its bounds hold for every
image size the preprocess step can be sent, up to the aspect-ratio limit, and it is what ONNX Runtime's TensorRT
provider is given as its optimisation profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.patch_profile import (
    MAX_PATCHES,
    PROFILE_FILE,
    TYPICAL_IMAGE,
    PatchProfile,
    image_patches,
    largest_area,
    patch_profile,
)
from serving.smart_resize import MAX_ASPECT_RATIO, PatchSettings, smart_resize

pytestmark = pytest.mark.timeout(60)


def settings(max_pixels: int, min_pixels: int = 56 * 56, temporal: int = 2) -> PatchSettings:
    return PatchSettings(min_pixels, max_pixels, 14, 2, temporal, 3, 1 / 255, (0.5,) * 3, (0.5,) * 3)


TINY = settings(28 * 28 * 64)  # tiny-qwen2-vl's budget
REAL = settings(28 * 28 * 16384)  # Qwen2-VL-2B's


def _sizes() -> list[tuple[int, int]]:
    """Heights and widths from tiny to large, and the most elongated the resize takes, both ways."""
    sides = [1, 7, 27, 28, 55, 100, 224, 333, 720, 1080, 1999, 4096]
    sizes = [(h, w) for h in sides for w in sides if max(h, w) / min(h, w) <= MAX_ASPECT_RATIO]
    for short in (1, 3, 14, 28, 40, 57, 100):
        sizes += [(short, short * MAX_ASPECT_RATIO), (short * MAX_ASPECT_RATIO, short)]
    return sizes


@pytest.mark.parametrize("budget", [TINY, REAL], ids=["tiny", "real"])
def test_no_image_resizes_to_more_pixels_than_the_largest_area_and_an_elongated_one_reaches_it(
    budget: PatchSettings,
) -> None:
    areas = [h * w for h, w in (smart_resize(*size, budget.factor, 56 * 56, budget.max_pixels) for size in _sizes())]
    assert max(areas) <= largest_area(budget)
    if budget is TINY:  # a 200:1 image keeps one merged token's height and goes past max_pixels
        assert max(areas) == largest_area(budget) > budget.max_pixels


def test_the_profile_spans_one_merged_token_to_the_largest_call_and_is_tuned_for_a_720p_image() -> None:
    profile = patch_profile(TINY, TINY)
    assert profile.min_patches == 4  # 2 x 2 patches: one token
    assert profile.opt_patches == image_patches(TINY, *TYPICAL_IMAGE) == 240  # 720p -> 168 x 280 pixels
    assert profile.max_patches == largest_area(TINY) // 14**2  # the largest image, or one frame group of a video
    assert profile.patch_values == 3 * 2 * 14 * 14 and profile.max_grids == 1


def test_a_real_budget_is_capped_at_the_exported_graphs_patch_bound() -> None:
    profile = patch_profile(REAL, REAL)
    assert profile.max_patches == MAX_PATCHES
    assert profile.opt_patches == 4784  # 720p -> 728 x 1288 pixels: 52 x 92 patches


def test_a_video_processor_allowing_larger_frames_sets_the_largest_call() -> None:
    larger_frames = settings(28 * 28 * 100)
    profile = patch_profile(TINY, larger_frames)
    assert profile.max_patches == largest_area(larger_frames) // 14**2 > largest_area(TINY) // 14**2


def test_grids_per_call_multiply_the_largest_call() -> None:
    single, double = patch_profile(TINY, TINY), patch_profile(TINY, TINY, grids_per_call=2)
    assert double.max_patches == 2 * single.max_patches and double.max_grids == 2


def test_the_provider_shapes_name_both_inputs() -> None:
    profile = PatchProfile(1176, 4, 240, 7232, max_grids=2)
    assert profile.shapes("min") == "pixel_values:4x1176,image_grid_thw:1x3"
    assert profile.shapes("opt") == "pixel_values:240x1176,image_grid_thw:1x3"
    assert profile.shapes("max") == "pixel_values:7232x1176,image_grid_thw:2x3"


def test_the_profile_file_round_trips_and_a_missing_one_asks_for_a_new_export(tmp_path: Path) -> None:
    profile = patch_profile(TINY, TINY)
    assert profile.write(tmp_path).name == PROFILE_FILE
    assert PatchProfile.read(tmp_path) == profile
    with pytest.raises(ValueError, match=r"patch_profile\.json is missing beside the vision tower: export"):
        PatchProfile.read(tmp_path / "elsewhere")


def test_processors_that_cut_different_patches_and_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="same patches"):
        patch_profile(TINY, settings(28 * 28 * 64, temporal=1))
    with pytest.raises(ValueError, match="grids_per_call must be positive"):
        patch_profile(TINY, TINY, grids_per_call=0)
    with pytest.raises(ValueError, match="1 <= min <= opt <= max"):
        PatchProfile(1176, 8, 4, 16)
