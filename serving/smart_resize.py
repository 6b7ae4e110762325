"""Images resized to a pixel budget and cut into merged patches, in numpy and Pillow, without transformers or torch:
the image processor of Qwen2-VL-style checkpoints (``Qwen2VLImageProcessor`` with its PIL backend), bit for bit.

Each image is resized (Pillow, the configured filter) to sides that are multiples of ``patch_size * merge_size``
whose area lies within ``[min_pixels, max_pixels]`` (``smart_resize``), rescaled and normalised (one lookup table per
channel, as ``serving.image_processor``), then cut into ``patch_size`` squares, repeated ``temporal_patch_size`` times
(an image is a video of one still frame) and ordered by merge block: ``[patches, channels * temporal * patch^2]`` and
its grid ``(1, rows, columns)`` in patches. An image then costs ``rows * columns / merge_size^2`` tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from serving.image_processor import apply_table, channel_setting, pixel_table, positive_setting, read_settings
from serving.pixel_budget import PixelBudget

MAX_ASPECT_RATIO = 200  # the image processor refuses a longer side over 200 times the shorter
CHANNELS = 3


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The resize target (transformers' ``smart_resize``): both sides multiples of ``factor``, the area within
    ``[min_pixels, max_pixels]``, the aspect ratio kept as closely as that allows."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio must be at most {MAX_ASPECT_RATIO}, got {width} x {height}")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class PatchSettings:
    min_pixels: int
    max_pixels: int
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    resample: int
    rescale_factor: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} exceeds max_pixels {self.max_pixels}")

    @property
    def factor(self) -> int:
        """The side of one merged token, in pixels."""
        return self.patch_size * self.merge_size

    @property
    def budget(self) -> PixelBudget:
        """The checkpoint's own pixel budget."""
        return PixelBudget(self.min_pixels, self.max_pixels)

    @property
    def patch_values(self) -> int:
        return CHANNELS * self.temporal_patch_size * self.patch_size**2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchSettings:
        size = data.get("size") or {}
        return cls(
            min_pixels=positive_setting("size.shortest_edge", size.get("shortest_edge", data.get("min_pixels"))),
            max_pixels=positive_setting("size.longest_edge", size.get("longest_edge", data.get("max_pixels"))),
            patch_size=positive_setting("patch_size", data.get("patch_size")),
            merge_size=positive_setting("merge_size", data.get("merge_size")),
            temporal_patch_size=positive_setting("temporal_patch_size", data.get("temporal_patch_size")),
            resample=int(data.get("resample", Image.Resampling.BICUBIC)),
            rescale_factor=float(data.get("rescale_factor", 1 / 255)),
            mean=channel_setting("image_mean", data.get("image_mean")),
            std=channel_setting("image_std", data.get("image_std")),
        )

    @classmethod
    def read(cls, folder: Path) -> PatchSettings:
        return cls.from_dict(read_settings(folder))

    def tokens(self, height: int, width: int) -> int:
        """Tokens an image of this size costs after the merge."""
        resized_height, resized_width = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return (resized_height // self.factor) * (resized_width // self.factor)


class PatchImageProcessor:
    """RGB PIL image -> (float32 patches [patches, channels * temporal * patch^2], int64 grid (1, rows, columns)),
    resized within the checkpoint's pixel budget or a request's (transformers' ``min_pixels`` / ``max_pixels`` call
    arguments)."""

    def __init__(self, settings: PatchSettings) -> None:
        self.settings = settings
        self.table = pixel_table(settings.rescale_factor, settings.mean, settings.std)

    def __call__(
        self, image: Image.Image, budget: PixelBudget | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``budget``: the request's, else the checkpoint's."""
        if image.mode != "RGB":
            raise ValueError("the image processor takes RGB images")
        s = self.settings
        area = budget or s.budget
        height, width = smart_resize(image.height, image.width, s.factor, area.min_pixels, area.max_pixels)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=s.resample)
        pixels = apply_table(self.table, np.asarray(image))  # [3, H, W]
        rows, columns, m, p = height // s.patch_size, width // s.patch_size, s.merge_size, s.patch_size
        patches = pixels.reshape(CHANNELS, rows // m, m, p, columns // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)
        repeated = np.broadcast_to(patches[:, :, :, :, :, None], (*patches.shape[:5], s.temporal_patch_size, p, p))
        flat = np.ascontiguousarray(repeated.reshape(rows * columns, s.patch_values), dtype=np.float32)
        return flat, np.array([1, rows, columns], dtype=np.int64)
