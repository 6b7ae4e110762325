"""A checkpoint's CLIP, SigLIP or LLaVA-NeXT image processor (``preprocessor_config.json``) in numpy and Pillow,
without transformers or torch: resize so the shortest edge has the configured size, or to a fixed size (Pillow, the
configured filter), centre crop (CLIP's; SigLIP's resizes without one), rescale and normalise. LLaVA-NeXT's
(``image_grid_pinpoints``) makes a base image and tiles of each image (``serving.anyres``), each then rescaled and
normalised the same way.

The steps and their arithmetic are transformers' ``CLIPImageProcessor``, ``SiglipImageProcessor`` and
``LlavaNextImageProcessor`` with their PIL backend, which CLIP, LLaVA-1.5, SigLIP and LLaVA-NeXT checkpoints name,
so the pixel values are equal to what it gives, bit for bit (``tests/unit/test_image_processor.py`` compares them on
the presets' saved configurations). Rescaling and normalising a uint8 value always give the same float32, so both
are one lookup table per channel. Settings this does not implement are refused when the model loads, by name, rather
than served differently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from serving.anyres import AnyresGrid, anyres_images

PREPROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"  # transformers 5 saves a processor's image settings inside this one
# image_processor_type -> whether it centre-crops when its config does not say (transformers' class defaults).
CROPS_BY_DEFAULT = {
    "CLIPImageProcessor": True,
    "CLIPImageProcessorPil": True,
    "SiglipImageProcessor": False,
    "SiglipImageProcessorPil": False,
    "LlavaNextImageProcessor": True,
    "LlavaNextImageProcessorPil": True,
}
# The types that tile each image into a base image and a grid of tiles (image_grid_pinpoints); their do_pad only
# pads a batch's images to the same number of tiles, which the served steps do not need.
ANYRES_TYPES = ("LlavaNextImageProcessor", "LlavaNextImageProcessorPil")
SUPPORTED_TYPES = tuple(CROPS_BY_DEFAULT)
# Keys that change nothing here: bookkeeping, or steps our decoder already does (every image arrives as RGB).
_IGNORED_KEYS = {"image_processor_type", "processor_class", "do_convert_rgb", "feature_extractor_type", "backend"}
_KNOWN_KEYS = {
    *_IGNORED_KEYS,
    *("do_resize", "size", "resample", "do_center_crop", "crop_size"),
    *("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std", "default_to_square"),
    "image_grid_pinpoints",
}
_OFF_WHEN_FALSE = ("do_pad", "do_reduce_labels")  # harmless when present and false


def positive_setting(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{PREPROCESSOR_FILE}: {field} must be a positive integer, got {value!r}")
    return value


def _size(field: str, value: object, square_int: bool) -> tuple[str, tuple[int, int]]:
    """("shortest_edge", (n, n)) or ("fixed", (height, width)), as transformers reads ``size``/``crop_size``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ("fixed" if square_int else "shortest_edge"), (
            positive_setting(field, value),
            positive_setting(field, value),
        )
    if isinstance(value, dict) and set(value) == {"shortest_edge"}:
        edge = positive_setting(f"{field}.shortest_edge", value["shortest_edge"])
        return "shortest_edge", (edge, edge)
    if isinstance(value, dict) and set(value) == {"height", "width"}:
        return "fixed", (
            positive_setting(f"{field}.height", value["height"]),
            positive_setting(f"{field}.width", value["width"]),
        )
    raise ValueError(f"{PREPROCESSOR_FILE}: {field} {value!r} is not supported (shortest_edge, or height and width)")


def channel_setting(field: str, value: object) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, int | float) else value
    if not isinstance(values, list | tuple) or len(values) != 3 or not all(isinstance(v, int | float) for v in values):
        raise ValueError(f"{PREPROCESSOR_FILE}: {field} must be a number or three numbers, got {value!r}")
    return float(values[0]), float(values[1]), float(values[2])


@dataclass(frozen=True)
class ImageProcessorConfig:
    resize: tuple[str, tuple[int, int]] | None  # ("shortest_edge" | "fixed", (height, width)); None: no resize
    resample: int
    crop: tuple[int, int] | None  # (height, width)
    rescale_factor: float | None
    mean: tuple[float, float, float] | None  # None: no normalisation
    std: tuple[float, float, float] | None
    grid_pinpoints: object = None  # LLaVA-NeXT's [[height, width], ...]; checked by serving.anyres.AnyresGrid

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageProcessorConfig:
        kind = data.get("image_processor_type", "CLIPImageProcessor")
        if kind not in SUPPORTED_TYPES:
            raise ValueError(f"{PREPROCESSOR_FILE}: image_processor_type {kind!r} is not supported ({SUPPORTED_TYPES})")
        anyres = kind in ANYRES_TYPES
        for key in _OFF_WHEN_FALSE:
            if data.get(key) and not (anyres and key == "do_pad"):
                raise ValueError(f"{PREPROCESSOR_FILE}: {key} is not supported")
        unknown = set(data) - _KNOWN_KEYS - set(_OFF_WHEN_FALSE)
        if not anyres and "image_grid_pinpoints" in data:
            unknown.add("image_grid_pinpoints")
        if unknown:
            raise ValueError(f"{PREPROCESSOR_FILE}: settings not supported: {', '.join(sorted(unknown))}")
        if data.get("default_to_square", False):
            raise ValueError(f"{PREPROCESSOR_FILE}: default_to_square is not supported")
        resample = data.get("resample", Image.Resampling.BICUBIC)
        if resample not in {int(r) for r in Image.Resampling}:
            raise ValueError(f"{PREPROCESSOR_FILE}: resample {resample!r} is not a Pillow filter")
        normalise = data.get("do_normalize", True)
        resize = _size("size", data.get("size", {"shortest_edge": 224}), square_int=False)
        crop = _size("crop_size", data.get("crop_size", 224), square_int=True)[1]
        return cls(
            resize=resize if data.get("do_resize", True) else None,
            resample=int(resample),
            crop=crop if data.get("do_center_crop", CROPS_BY_DEFAULT[kind]) else None,
            rescale_factor=float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else None,
            mean=channel_setting("image_mean", data["image_mean"]) if normalise else None,
            std=channel_setting("image_std", data["image_std"]) if normalise else None,
            grid_pinpoints=data.get("image_grid_pinpoints") if anyres else None,
        )

    @classmethod
    def read(cls, folder: Path) -> ImageProcessorConfig:
        return cls.from_dict(read_settings(folder))


def read_settings(folder: Path) -> dict[str, Any]:
    """From ``preprocessor_config.json`` (an exported repository, a hub checkpoint), or else the ``image_processor``
    entry of ``processor_config.json`` (a checkpoint saved by transformers 5)."""
    folder = Path(folder)
    if (folder / PREPROCESSOR_FILE).is_file():
        settings: dict[str, Any] = json.loads((folder / PREPROCESSOR_FILE).read_text())
        return settings
    settings = json.loads((folder / PROCESSOR_FILE).read_text())["image_processor"]
    return settings


def pixel_table(
    rescale_factor: float | None, mean: tuple[float, float, float] | None, std: tuple[float, float, float] | None
) -> np.ndarray:
    """[channel, uint8 value] -> the float32 pixel value after rescaling and normalising, as transformers computes it
    (rescaled in float64, then float32)."""
    values = np.arange(256, dtype=np.float64)
    if rescale_factor is not None:
        values = values * rescale_factor
    table = np.broadcast_to(values.astype(np.float32), (3, 256))
    if mean is not None and std is not None:
        table = (table - np.array(mean, dtype=np.float32)[:, None]) / np.array(std, dtype=np.float32)[:, None]
    return np.ascontiguousarray(table, dtype=np.float32)


def apply_table(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [3, H, W] through ``pixel_table``."""
    out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
    for channel in range(3):
        np.take(table[channel], pixels[..., channel], out=out[channel])
    return out


def resize_shape(width: int, height: int, edge: int) -> tuple[int, int]:
    """(width, height) with the shortest side ``edge`` and the other truncated, as transformers computes it."""
    if width <= height:
        return edge, int(edge * height / width)
    return int(edge * width / height), edge


class ImageProcessor:
    """RGB PIL image -> float32 pixel values [3, H, W]."""

    def __init__(self, config: ImageProcessorConfig) -> None:
        self.config = config
        self.table = pixel_table(config.rescale_factor, config.mean, config.std)

    @classmethod
    def from_folder(cls, folder: Path) -> ImageProcessor:
        return cls(ImageProcessorConfig.read(folder))

    def resize_side(self) -> int | None:
        """The longest side the resize makes its shortest (or fixed) sides: a picture decoded smaller than this
        would have to be enlarged. None without a resize."""
        resize = self.config.resize
        return None if resize is None else max(resize[1])

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            raise ValueError("the image processor takes RGB images")
        resize = self.config.resize
        if resize is not None:
            kind, (height, width) = resize
            size = resize_shape(*image.size, height) if kind == "shortest_edge" else (width, height)
            if size != image.size:
                image = image.resize(size, resample=self.config.resample)
        pixels = np.asarray(image)
        if self.config.crop is not None:
            pixels = center_crop(pixels, *self.config.crop)
        return apply_table(self.table, pixels)

    def tensors(self, image: Image.Image) -> dict[str, np.ndarray]:
        """The vision tower's inputs for one image."""
        return {"pixel_values": self(image)}

    def anyres_grid(self) -> AnyresGrid | None:
        """LLaVA-NeXT's tiling, or None for a processor that sees each image once. Its base image and tiles are
        squares of the crop size; a resize or crop that would change them again is refused."""
        if self.config.grid_pinpoints is None:
            return None
        crop, resize = self.config.crop, self.config.resize
        if crop is None or crop[0] != crop[1] or resize is None or resize[1] != crop:
            raise ValueError(
                f"{PREPROCESSOR_FILE}: tiling with image_grid_pinpoints needs a square crop_size equal to size, "
                f"got size {resize} and crop_size {crop}"
            )
        return AnyresGrid.of(self.config.grid_pinpoints, crop[0])

    def tiles(self, image: Image.Image, grid: AnyresGrid) -> np.ndarray:
        """RGB PIL image -> float32 [1 + tiles, 3, S, S]: the base image, then the grid's tiles row by row."""
        if image.mode != "RGB":
            raise ValueError("the image processor takes RGB images")
        return np.stack([apply_table(self.table, p) for p in anyres_images(image, grid, self.config.resample)])


def center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W, C] -> [height, width, C] around the centre; an image smaller than the crop is padded with zeros
    around it first, as transformers does."""
    rows, columns = pixels.shape[:2]
    if rows < height or columns < width:
        padded = np.zeros((max(rows, height), max(columns, width), pixels.shape[2]), dtype=pixels.dtype)
        top, left = math.ceil((padded.shape[0] - rows) / 2), math.ceil((padded.shape[1] - columns) / 2)
        padded[top : top + rows, left : left + columns] = pixels
        pixels, rows, columns = padded, padded.shape[0], padded.shape[1]
    top, left = (rows - height) // 2, (columns - width) // 2
    return pixels[top : top + height, left : left + width]
