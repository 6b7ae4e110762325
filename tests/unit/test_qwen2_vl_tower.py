"""export/families/qwen2_vl/tower.py: the exportable tower equals transformers' Qwen2-VL tower, its positions and
attention spans computed from ``grid_thw`` by tensor ops alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig
from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids

from export.families.qwen2_vl.exporter import load_vision_tower
from export.families.qwen2_vl.tower import VisionTower, patch_layout

pytestmark = pytest.mark.timeout(120)

GRIDS = [[[1, 2, 2]], [[1, 6, 6]], [[1, 2, 10], [1, 14, 14]], [[1, 4, 4], [1, 8, 2], [2, 6, 4]], [[3, 2, 4]]]


@pytest.mark.parametrize("grids", GRIDS, ids=str)
def test_positions_and_frame_spans_equal_transformers(grids: list[list[int]]) -> None:
    grid = torch.tensor(grids)
    patches = int(grid.prod(-1).sum())
    positions, span = patch_layout(grid, patches, merge=2)
    assert torch.equal(positions, get_vision_position_ids(grid, 2))
    starts = get_vision_cu_seqlens(grid)[:-1]  # each frame's first patch
    lengths = get_vision_cu_seqlens(grid).diff()
    assert torch.equal(span, torch.repeat_interleave(starts, lengths))


@pytest.mark.parametrize("grids", GRIDS, ids=str)
def test_the_tower_equals_transformers_for_images_of_several_grids_in_one_call(
    tiny_qwen2_vl: Path, grids: list[list[int]]
) -> None:
    config = AutoConfig.from_pretrained(tiny_qwen2_vl)
    visual = load_vision_tower(tiny_qwen2_vl, config)
    grid = torch.tensor(grids)
    vision = config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    pixels = torch.randn(int(grid.prod(-1).sum()), width, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = visual(pixels, grid_thw=grid).pooler_output
        actual = VisionTower(visual)(pixels, grid)
    assert actual.shape == (int(grid.prod(-1).sum()) // 4, config.text_config.hidden_size)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("grids", [[[1, 16, 10]], [[1, 2, 10], [1, 14, 14]], [[2, 12, 6], [1, 4, 4]]], ids=str)
def test_window_attention_by_mask_equals_qwen2_5_vls_reordered_windows(
    tiny_qwen2_5_vl: Path, grids: list[list[int]]
) -> None:
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    from export.families.qwen2_vl.exporter import vision_tower

    config = AutoConfig.from_pretrained(tiny_qwen2_5_vl)
    visual = load_vision_tower(tiny_qwen2_5_vl, config, Qwen2_5_VisionTransformerPretrainedModel)
    tower = vision_tower(visual, config)
    assert (tower.window_units, tower.full_blocks) == (4, {1, 3})  # 112-pixel windows, 2 of 4 blocks full
    grid = torch.tensor(grids)
    pixels = torch.randn(int(grid.prod(-1).sum()), 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = visual(pixels, grid_thw=grid).pooler_output
        actual = tower(pixels, grid)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
