"""Test images: each edge case as encoded bytes, with the RGB image the server should see."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def scene(width: int = 96, height: int = 80, seed: int = 0) -> Image.Image:
    """A distinct, non-symmetric picture for each seed (so images embed differently)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(x) for x in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1, y1 = x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(x) for x in rng.integers(0, 256, 3)))
    return image


def on_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def rgba_case() -> tuple[bytes, Image.Image]:
    image = scene(seed=1).convert("RGBA")
    alpha = Image.linear_gradient("L").resize(image.size)
    image.putalpha(alpha)
    return encode(image), on_white(image)


def palette_case() -> tuple[bytes, Image.Image]:
    image = scene(seed=2).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(image), image.convert("RGB")


def cmyk_case() -> tuple[bytes, Image.Image]:
    data = encode(scene(seed=3).convert("CMYK"), "JPEG", quality=95)
    return data, Image.open(io.BytesIO(data)).convert("RGB")


def sixteen_bit_case() -> tuple[bytes, Image.Image]:
    ramp = np.tile(np.linspace(0, 65535, 96, dtype=np.uint16), (80, 1))
    image = Image.fromarray(ramp)  # uint16 -> mode I;16
    expected = Image.fromarray(np.rint(ramp / 257.0).astype(np.uint8)).convert("RGB")
    return encode(image), expected


def grayscale_case() -> tuple[bytes, Image.Image]:
    image = scene(seed=4).convert("L")
    return encode(image), image.convert("RGB")


def exif_rotated_case() -> tuple[bytes, Image.Image]:
    """Stored landscape with EXIF orientation 6 (rotate 90° clockwise to display): shown portrait."""
    image = scene(120, 60, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(image, "JPEG", quality=95, exif=exif.tobytes())
    stored = Image.open(io.BytesIO(data)).convert("RGB")
    return data, stored.transpose(Image.Transpose.ROTATE_270)


def animated_case() -> tuple[bytes, Image.Image]:
    frames = [scene(seed=10 + i).convert("P", palette=Image.Palette.ADAPTIVE) for i in range(3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return data, Image.open(io.BytesIO(data)).convert("RGB")


def tiny_case() -> tuple[bytes, Image.Image]:
    image = Image.new("RGB", (1, 1), (10, 200, 30))
    return encode(image), image


def strip_case() -> tuple[bytes, Image.Image]:
    """1x10000: centre-cropped to the 1:20 aspect-ratio limit before CLIP's own resize and crop."""
    column = np.linspace(0, 255, 10000).astype(np.uint8)
    image = Image.fromarray(np.stack([column, 255 - column, column], axis=-1)[:, None, :])
    top = (10000 - 20) // 2
    return encode(image), image.crop((0, top, 1, top + 20))


def truncated_jpeg() -> bytes:
    """A valid header followed by half of the entropy-coded data."""
    noise = np.random.default_rng(6).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=90)
    return data[: len(data) // 2]


def decompression_bomb() -> bytes:
    """64 megapixels of one colour: ~60 KB on disk, over the 36 MP cap."""
    return encode(Image.new("L", (8000, 8000), 0))


DEFINED_CASES = {
    "rgba": rgba_case,
    "palette": palette_case,
    "cmyk": cmyk_case,
    "16-bit": sixteen_bit_case,
    "grayscale": grayscale_case,
    "exif-rotated": exif_rotated_case,
    "animated": animated_case,
    "1x1": tiny_case,
    "1x10000": strip_case,
}
