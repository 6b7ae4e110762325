"""Images from a request, as encoded bytes for Triton: base64 ``data:`` URLs, allowed http(s) URLs, uploads.

Each is checked by its header only (Pillow reads no pixel data here): size and format. Triton's preprocessing
decodes it strictly, with its own pixel caps.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image, UnidentifiedImageError

from client.media_kind import looks_like_video
from gateway.errors import invalid
from gateway.fetch import ImageFetcher

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


def check_image(data: bytes, param: str, max_bytes: int) -> bytes:
    if not data:
        raise invalid(param, "the image is empty", "invalid_image")
    if len(data) > max_bytes:
        raise invalid(param, f"the image is {len(data)} bytes, over the limit of {max_bytes}", "image_too_large")
    if looks_like_video(data):
        raise invalid(param, "is a video, not an image; send it as a video_url part", "invalid_image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Triton checks the pixel count
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                image_format = image.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise invalid(param, f"not an image in a supported format ({', '.join(FORMATS)})", "invalid_image") from None
    if image_format not in FORMATS:
        raise invalid(param, f"not an image in a supported format ({', '.join(FORMATS)})", "invalid_image")
    return data


_EXAMPLE_TYPES = {"image": "image/png", "video": "video/mp4"}


def decode_data_url(url: str, param: str, max_bytes: int, kind: str = "image") -> bytes:
    """A base64 data URL's bytes; ``kind`` (image or video) is the media type's top level it must have."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        example = _EXAMPLE_TYPES[kind]
        raise invalid(param, f"a data URL must be base64: data:{example};base64,...", f"invalid_{kind}_url")
    media_type = header[len("data:") : -len(";base64")].split(";", 1)[0].lower()
    if media_type and not (media_type.startswith(f"{kind}/") or media_type == "application/octet-stream"):
        raise invalid(param, f"the data URL's media type is {media_type}, not {_article(kind)}", f"invalid_{kind}_url")
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:  # before decoding anything
        raise invalid(param, f"the {kind} is over the limit of {max_bytes} bytes", f"{kind}_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(param, "the data URL's base64 payload is malformed", f"invalid_{kind}_url") from None


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


async def read_url(fetcher: ImageFetcher, url: str, param: str, kind: str, max_bytes: int) -> bytes:
    """A media URL's bytes (``kind``: image or video): a base64 data URL, or an http(s) URL under the fetch policy."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return decode_data_url(url, param, max_bytes, kind=kind)
    if scheme in ("http", "https"):
        return await fetcher.fetch(url, param, kind=kind, max_bytes=max_bytes)
    raise invalid(param, f"{_article(kind)} URL must be a base64 data: URL or an http(s) URL", f"invalid_{kind}_url")


class ImageLoader:
    def __init__(self, fetcher: ImageFetcher, max_bytes: int) -> None:
        self.fetcher = fetcher
        self.max_bytes = max_bytes

    async def load(self, url: str, param: str) -> bytes:
        return check_image(await read_url(self.fetcher, url, param, "image", self.max_bytes), param, self.max_bytes)

    def upload(self, data: bytes, param: str) -> bytes:
        return check_image(data, param, self.max_bytes)
