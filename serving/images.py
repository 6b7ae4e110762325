"""Strict, bounded decoding of client image bytes into RGB PIL images.

Defined behaviour (README, "Images"): the pixel cap is checked from the header before any pixel is
decoded; truncated or corrupt files are errors; EXIF orientation is applied; transparent images are
composited on white (as Hugging Face's ``convert_rgb`` does); 16-bit images are scaled to 8 bits;
animated images use their first frame; images more elongated than ``max_aspect_ratio`` are first
centre-cropped to it (CLIP's preprocessing keeps only the centre square anyway, and the crop keeps the
resize from allocating gigabytes for a 1x10000 strip).

A caller that will shrink the picture anyway may name the side it needs (``draft_side``): a JPEG at least twice
that large on both sides is then decoded at a reduced scale (libjpeg's DCT scaling: 1/2, 1/4 or 1/8, never below
``draft_side``), which costs a fraction of a full decode.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from client.field_errors import FieldRef
from client.media_kind import looks_like_video
from serving.errors import InvalidInputError

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, MemoryError)


def image_payload(data: bytes, field: str | FieldRef) -> bytes:
    """Encoded image bytes, given raw or as a base64 ``data:`` URL.

    JSON (Triton's HTTP ``generate`` endpoints) cannot carry raw bytes, so those clients send the data URLs
    that OpenAI-style clients already use for images.
    """
    if not data.startswith(b"data:"):
        return data
    header, comma, body = data.partition(b",")
    if not comma or not header.endswith(b";base64"):
        raise InvalidInputError(field, "a data URL must be 'data:<type>;base64,<data>'")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(field, "the data URL's base64 data is malformed") from None


def open_image(data: bytes, field: str | FieldRef, max_pixels: int) -> Image.Image:
    """Read only the header: the format is known and the size within ``max_pixels``; no pixel is decoded."""
    data = image_payload(data, field)
    if not data:
        raise InvalidInputError(field, "empty; expected encoded image bytes")
    if looks_like_video(data):
        raise InvalidInputError(field, "is a video, not an image; send it as a video")
    not_an_image = InvalidInputError(
        field, f"not a decodable image (supported formats: {', '.join(SUPPORTED_FORMATS)})"
    )
    try:
        with warnings.catch_warnings(), _pillow_pixel_limit(max_pixels):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError:
        raise InvalidInputError(field, f"image exceeds the limit of {max_pixels} pixels") from None
    except (UnidentifiedImageError, *_DECODE_ERRORS):
        raise not_an_image from None
    width, height = image.size
    if width < 1 or height < 1:
        raise not_an_image
    if width * height > max_pixels:
        raise InvalidInputError(
            field, f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}"
        )
    return image


def load_rgb(
    image: Image.Image, field: str | FieldRef, max_aspect_ratio: float, draft_side: int | None = None
) -> Image.Image:
    """Decode an opened image into the RGB picture the model sees (the module docstring's rules)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.seek(0)  # animated images: the first frame
            if draft_side is not None and image.format == "JPEG":
                image.draft(image.mode, (draft_side, draft_side))  # no-op unless both sides are >= 2 x draft_side
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except _DECODE_ERRORS:
        raise InvalidInputError(field, "image data is truncated or corrupt") from None
    return _limit_aspect_ratio(image, max_aspect_ratio)


def decode_image(
    data: bytes, field: str | FieldRef, max_pixels: int, max_aspect_ratio: float, draft_side: int | None = None
) -> Image.Image:
    return load_rgb(open_image(data, field, max_pixels), field, max_aspect_ratio, draft_side)


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow refuses images over 2 x its own limit at open(); align it with ours so ours decides."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: PIL's convert() would clip at 255, so scale 0..65535 to 0..255 (rounded).
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _limit_aspect_ratio(image: Image.Image, max_aspect_ratio: float) -> Image.Image:
    width, height = image.size
    if width > height * max_aspect_ratio:
        keep = max(1, round(height * max_aspect_ratio))
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    if height > width * max_aspect_ratio:
        keep = max(1, round(width * max_aspect_ratio))
        top = (height - keep) // 2
        return image.crop((0, top, width, top + keep))
    return image
