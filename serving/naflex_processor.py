"""SigLIP2's NaFlex image processor (``Siglip2ImageProcessor``) in numpy and Pillow, without transformers or torch:
each image is resized, keeping its aspect ratio, to the largest size whose sides are multiples of the patch size and
which holds at most ``max_num_patches`` patches (transformers' binary search over the scale, reproduced step for
step), then rescaled and normalised, cut into patches (row by row, each patch's pixels row by row, channels last)
and padded to ``max_num_patches`` with zeros and a mask. The pixel values equal transformers' PIL backend's, bit for
bit (``tests/unit/test_naflex_processor.py``). Settings this does not implement are refused when the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from serving.image_processor import (
    PREPROCESSOR_FILE,
    apply_table,
    channel_setting,
    pixel_table,
    positive_setting,
    read_settings,
)

NAFLEX_TYPES = ("Siglip2ImageProcessor", "Siglip2ImageProcessorPil")
_KNOWN_KEYS = {
    *("image_processor_type", "processor_class", "do_convert_rgb", "backend"),
    *("do_resize", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std"),
    *("patch_size", "max_num_patches"),
}
_SEARCH_EPS = 1e-5  # transformers' get_image_size_for_max_num_patches


@dataclass(frozen=True)
class NaflexConfig:
    patch_size: int
    max_num_patches: int
    resample: int
    rescale_factor: float | None
    mean: tuple[float, float, float] | None  # None: no normalisation
    std: tuple[float, float, float] | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NaflexConfig:
        kind = data.get("image_processor_type")
        if kind not in NAFLEX_TYPES:
            raise ValueError(f"{PREPROCESSOR_FILE}: image_processor_type {kind!r} is not a NaFlex one ({NAFLEX_TYPES})")
        unknown = set(data) - _KNOWN_KEYS
        if unknown:
            raise ValueError(f"{PREPROCESSOR_FILE}: settings not supported: {', '.join(sorted(unknown))}")
        if not data.get("do_resize", True):
            raise ValueError(f"{PREPROCESSOR_FILE}: do_resize false is not supported (images of any size arrive)")
        resample = data.get("resample", Image.Resampling.BILINEAR)
        if resample not in {int(r) for r in Image.Resampling}:
            raise ValueError(f"{PREPROCESSOR_FILE}: resample {resample!r} is not a Pillow filter")
        normalise = data.get("do_normalize", True)
        return cls(
            patch_size=positive_setting("patch_size", data.get("patch_size", 16)),
            max_num_patches=positive_setting("max_num_patches", data.get("max_num_patches", 256)),
            resample=int(resample),
            rescale_factor=float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else None,
            mean=channel_setting("image_mean", data.get("image_mean", 0.5)) if normalise else None,
            std=channel_setting("image_std", data.get("image_std", 0.5)) if normalise else None,
        )


def target_size(height: int, width: int, patch_size: int, max_num_patches: int) -> tuple[int, int]:
    """(height, width) in pixels: transformers' binary search for the largest scale that fits the budget."""

    def scaled(scale: float, size: int) -> int:
        return max(patch_size, math.ceil(size * scale / patch_size) * patch_size)

    low, high = _SEARCH_EPS / 10, 100.0
    while high - low >= _SEARCH_EPS:
        scale = (low + high) / 2
        if (scaled(scale, height) / patch_size) * (scaled(scale, width) / patch_size) <= max_num_patches:
            low = scale
        else:
            high = scale
    return scaled(low, height), scaled(low, width)


class NaflexProcessor:
    """RGB PIL image -> pixel_values [max_num_patches, 3 * patch^2], pixel_attention_mask [max_num_patches] (int32)
    and spatial_shapes [2] (the patch grid's rows and columns, int64), as the processor gives them per image."""

    def __init__(self, config: NaflexConfig) -> None:
        self.config = config
        self.table = pixel_table(config.rescale_factor, config.mean, config.std)

    @classmethod
    def from_folder(cls, folder: Path) -> NaflexProcessor:
        return cls(NaflexConfig.from_dict(read_settings(folder)))

    def resize_side(self) -> None:
        """No reduced-scale decode: the size an image is resized to depends on its own shape."""
        return None

    def tensors(self, image: Image.Image) -> dict[str, np.ndarray]:
        if image.mode != "RGB":
            raise ValueError("the image processor takes RGB images")
        patch, budget = self.config.patch_size, self.config.max_num_patches
        height, width = target_size(image.height, image.width, patch, budget)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=self.config.resample)
        pixels = apply_table(self.table, np.asarray(image))  # [3, height, width]
        rows, columns = height // patch, width // patch
        patches = pixels.reshape(3, rows, patch, columns, patch).transpose(1, 3, 2, 4, 0).reshape(rows * columns, -1)
        padded = np.zeros((budget, patches.shape[1]), dtype=np.float32)
        padded[: len(patches)] = patches
        mask = np.zeros(budget, dtype=np.int32)
        mask[: len(patches)] = 1
        return {
            "pixel_values": padded,
            "pixel_attention_mask": mask,
            "spatial_shapes": np.array([rows, columns], dtype=np.int64),
        }
