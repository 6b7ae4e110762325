"""Accept images as a path, bytes, a PIL image or a numpy array; send encoded bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

ImageLike = str | Path | bytes | Image.Image | np.ndarray


def to_image_bytes(image: ImageLike) -> bytes:
    """Encoded files are sent as they are (the server decodes); arrays and PIL images as PNG."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(f"unsupported image type {type(image).__name__}: use a path, bytes, PIL image or numpy array")
