"""LLaVA-NeXT's "anyres" images in numpy and Pillow (no torch, no transformers): the grid an image of a given size
is tiled into, the base image and tiles the vision tower sees, the number of image tokens it costs, and the packing
of the projected tiles into one sequence per image.

Each step is transformers' own, step for step: ``select_best_resolution``, ``get_patch_output_size`` and
``LlavaNextImageProcessorPil.get_image_patches`` (the base image resized to the tile's square, the image resized
into the best grid resolution keeping its aspect ratio, padded with black around it, cut into tiles), and
``LlavaNextModel.pack_image_features`` with ``unpad_image`` (the tiles' features laid out as one feature map, the
padding rows or columns cut off, the newline vector appended to each row, the base image's features first).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

PACKING_FILE = "packing.json"  # written by the export next to the newline vector, read by the packing step
NEWLINE_FILE = "image_newline.npy"


def _pinpoints(value: object) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"image_grid_pinpoints must be a non-empty list of [height, width], got {value!r}")
    pinpoints = []
    for entry in value:
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in entry)
        ):
            raise ValueError(f"image_grid_pinpoints: {entry!r} is not [height, width] in positive pixels")
        pinpoints.append((int(entry[0]), int(entry[1])))
    return tuple(pinpoints)


@dataclass(frozen=True)
class AnyresGrid:
    """What decides an image's tiles and tokens: the resolutions it may be tiled at, the tile's side (the vision
    tower's image size) and the vision tower's patches per tile side."""

    pinpoints: tuple[tuple[int, int], ...]  # (height, width) in pixels, each a whole number of tiles
    tile: int
    # Per tile side: a tile's features are patches x patches (CLS dropped). None where only the tiling is needed
    # (the image processor's settings do not name the vision tower's patch size).
    patches: int | None = None

    def __post_init__(self) -> None:
        for height, width in self.pinpoints:
            if height % self.tile or width % self.tile:
                raise ValueError(
                    f"image_grid_pinpoints: [{height}, {width}] is not a whole number of {self.tile}-pixel tiles"
                )

    @classmethod
    def of(cls, pinpoints: object, tile: int, patches: int | None = None) -> AnyresGrid:
        return cls(_pinpoints(pinpoints), tile, patches)

    @classmethod
    def read(cls, folder: Path) -> AnyresGrid:
        data = json.loads((Path(folder) / PACKING_FILE).read_text())
        return cls.of(data["image_grid_pinpoints"], data["tile_size"], data["patches_per_side"])

    def write(self, folder: Path) -> None:
        data = {"image_grid_pinpoints": [list(p) for p in self.pinpoints], "tile_size": self.tile}
        (Path(folder) / PACKING_FILE).write_text(json.dumps({**data, "patches_per_side": self.patches}) + "\n")

    def best_resolution(self, height: int, width: int) -> tuple[int, int]:
        """The pinpoint that keeps most of the image's pixels, then wastes fewest (transformers' rule)."""
        best, most_kept, least_wasted = self.pinpoints[0], 0, math.inf
        for pin_height, pin_width in self.pinpoints:
            scale = min(pin_width / width, pin_height / height)
            kept = min(int(width * scale) * int(height * scale), width * height)
            wasted = pin_width * pin_height - kept
            if kept > most_kept or (kept == most_kept and wasted < least_wasted):
                best, most_kept, least_wasted = (pin_height, pin_width), kept, wasted
        return best

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of tiles for an image of this size."""
        pin_height, pin_width = self.best_resolution(height, width)
        return pin_height // self.tile, pin_width // self.tile

    def tiles(self, height: int, width: int) -> int:
        """Images the vision tower sees for it: the base image and the grid's tiles."""
        rows, columns = self.grid(height, width)
        return 1 + rows * columns

    def features_side(self) -> int:
        if self.patches is None:
            raise ValueError("this grid was read without the vision tower's patches per tile")
        return self.patches

    def unpadded(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of the tiles' feature map left once the padding's rows or columns are cut off."""
        rows, columns = self.grid(height, width)
        side = self.features_side()
        current_height, current_width = rows * side, columns * side
        if width / height > current_width / current_height:
            new_height = int(round(height * (current_width / width), 7))
            current_height -= 2 * ((current_height - new_height) // 2)
        else:
            new_width = int(round(width * (current_height / height), 7))
            current_width -= 2 * ((current_width - new_width) // 2)
        return current_height, current_width

    def image_tokens(self, height: int, width: int) -> int:
        """The base image's features, then each unpadded row of the tiles' features with its newline."""
        rows, columns = self.unpadded(height, width)
        return self.features_side() ** 2 + rows * (columns + 1)

    def pack(
        self, tile_embeds: npt.NDArray[Any], height: int, width: int, newline: npt.NDArray[Any]
    ) -> npt.NDArray[Any]:
        """[tiles, patches², hidden] -> [image_tokens, hidden], as ``pack_image_features``."""
        rows, columns = self.grid(height, width)
        base, tiles = tile_embeds[0], tile_embeds[1:]
        hidden, side = tiles.shape[-1], self.features_side()
        # [rows, columns, side, side, hidden] -> one [rows * side, columns * side, hidden] feature map
        features = tiles.reshape(rows, columns, side, side, hidden).transpose(0, 2, 1, 3, 4)
        features = features.reshape(rows * side, columns * side, hidden)
        keep_rows, keep_columns = self.unpadded(height, width)
        top, left = (features.shape[0] - keep_rows) // 2, (features.shape[1] - keep_columns) // 2
        features = features[top : top + keep_rows, left : left + keep_columns]
        newlines = np.broadcast_to(newline.astype(features.dtype), (keep_rows, 1, hidden))
        rows_with_newline = np.concatenate([features, newlines], axis=1).reshape(-1, hidden)
        return np.concatenate([base, rows_with_newline], axis=0)


def patch_output_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """The image's size resized into ``target`` (height, width) keeping its aspect ratio (transformers' rule)."""
    target_height, target_width = target
    scale_width, scale_height = target_width / width, target_height / height
    if scale_width < scale_height:
        return min(math.ceil(height * scale_width), target_height), target_width
    return target_height, min(math.ceil(width * scale_height), target_width)


def anyres_images(image: Image.Image, grid: AnyresGrid, resample: int) -> list[npt.NDArray[Any]]:
    """An RGB image -> its base image and tiles, uint8 [tile, tile, 3] each, before rescaling and normalising."""
    width, height = image.size
    target = grid.best_resolution(height, width)
    new_height, new_width = patch_output_size(height, width, target)
    resized = np.asarray(image.resize((new_width, new_height), resample=resample))
    padded = np.zeros((*target, 3), dtype=np.uint8)  # black around the image, centred (the odd pixel after it)
    top, left = (target[0] - new_height) // 2, (target[1] - new_width) // 2
    padded[top : top + new_height, left : left + new_width] = resized
    side = grid.tile
    tiles = [padded[i : i + side, j : j + side] for i in range(0, target[0], side) for j in range(0, target[1], side)]
    base = np.asarray(image.resize((side, side), resample=resample))
    return [base, *tiles]


def read_newline(folder: Path) -> npt.NDArray[np.float32]:
    newline: npt.NDArray[np.float32] = np.load(Path(folder) / NEWLINE_FILE).astype(np.float32)
    return newline
