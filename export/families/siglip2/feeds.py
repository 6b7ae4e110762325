"""NaFlex inputs for the SigLIP2 vision tower's parity checks (the ONNX export and TensorRT engines): noise patches of
images whose patch grids differ within each batch (square, one row, one column, tall, wide, part of the budget), so a
graph that had baked one grid in would fail. Patches past an image's grid are zero and masked, as the processor pads.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from export.families.base import Feeds
from serving.manifest import ComponentManifest


def patch_grids(max_num_patches: int) -> list[tuple[int, int]]:
    """(rows, columns) of the test images, each within ``max_num_patches``."""
    side = math.isqrt(max_num_patches)
    half = max(1, max_num_patches // 2)
    return [
        (side, side),
        (1, max_num_patches),
        (max_num_patches, 1),
        (max_num_patches // half, half),
        (max(1, side - 1), side),
        (max(1, max_num_patches // 3), min(3, max_num_patches)),
    ]


def naflex_inputs(max_num_patches: int, patch_dim: int, batch_sizes: tuple[int, ...]) -> Feeds:
    generator = np.random.default_rng(0)
    grids = patch_grids(max_num_patches)
    feeds: Feeds = []
    for n in batch_sizes:
        shapes = np.array([grids[i % len(grids)] for i in range(n)], dtype=np.int64)
        used = shapes[:, 0] * shapes[:, 1]
        mask = (np.arange(max_num_patches)[None, :] < used[:, None]).astype(np.int32)
        pixels = generator.standard_normal((n, max_num_patches, patch_dim)).astype(np.float32)
        pixels[mask == 0] = 0.0
        feeds.append({"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": shapes})
    return feeds


def naflex_feeds(repository: Path, manifest: ComponentManifest, batch_sizes: tuple[int, ...]) -> Feeds:
    """``FeedMaker`` for an exported NaFlex tower: its budget and patch size read off its first input."""
    max_num_patches, patch_dim = manifest.inputs[0].shape
    return naflex_inputs(max_num_patches, patch_dim, batch_sizes)
