"""The Qwen2-VL-family vision tower as the GPU precision check measures it (``benchmarks/gpu_precision.py``): the
module the export wraps for ONNX (``tower.VisionTower``, window attention included for Qwen2.5-VL) on the
checkpoint's weights, checked on the grids the export's parity uses and timed on 224-pixel images.

The served step runs one image a call; a batch of n here is n images in one call, whose attention mask keeps each to
itself (so its cost grows faster than n). Throughput is in patches (4 to a token).
"""

from __future__ import annotations

from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig

from export.families.measured import Feed, MeasuredComponent, TowerBudgets
from export.families.qwen2_vl.exporter import PARITY_GRIDS, TOLERANCE, load_vision_tower, vision_tower

LOAD_GRID = (1, 16, 16)  # a 224 x 224 image: 16 x 16 patches, 64 tokens
# Every grid the export checks parity on, images and a two-frame clip, taken in turn.
_GRIDS = tuple(grid for call in PARITY_GRIDS for grid in call)


def tower_component(checkpoint: Path, device: Any, name: str, vision_class: Any = None) -> MeasuredComponent:
    """``name``: the served vision model's; ``vision_class``: the tower's transformers class (None: Qwen2-VL's)."""
    config = AutoConfig.from_pretrained(checkpoint)
    vision = config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    tower = vision_tower(load_vision_tower(checkpoint, config, vision_class), config).eval().to(device)

    def feed(grids: list[tuple[int, int, int]]) -> Feed:
        grid = torch.tensor(grids, dtype=torch.int64)
        generator = torch.Generator().manual_seed(len(grids))
        patches = torch.randn((int(grid.prod(-1).sum()), width), generator=generator)
        return {"pixel_values": patches.to(device), "image_grid_thw": grid.to(device)}

    return MeasuredComponent(
        TowerBudgets(name, TOLERANCE),
        tower,
        "patches",
        lambda n: feed(list(islice(cycle(_GRIDS), n))),
        lambda n: feed([LOAD_GRID] * n),
    )
