"""decode_image: strict, bounded decoding of client bytes into RGB images."""

from __future__ import annotations

import base64
import io
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from client.field_errors import FieldRef
from serving.errors import InvalidInputError
from serving.images import decode_image, image_payload
from tests.images import (
    animated_case,
    cmyk_case,
    decompression_bomb,
    encode,
    exif_rotated_case,
    grayscale_case,
    palette_case,
    rgba_case,
    scene,
    strip_case,
    tiny_case,
    truncated_jpeg,
)

FIELD = FieldRef("image", 3)
MAX_PIXELS = 36_000_000
MAX_ASPECT = 20


def decode(data: bytes, max_pixels: int = MAX_PIXELS, max_aspect_ratio: float = MAX_ASPECT) -> Image.Image:
    return decode_image(data, FIELD, max_pixels, max_aspect_ratio)


def rejection(data: bytes, **limits: float) -> str:
    with pytest.raises(InvalidInputError) as caught:
        decode(data, **limits)
    return str(caught.value)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming ``width`` x ``height`` 8-bit greyscale and no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def noisy_jpeg(size: int = 256) -> bytes:
    """A JPEG big enough that cutting it short lands in the entropy-coded data, not the header."""
    pixels = np.random.default_rng(7).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def assert_safe_for_clients(message: str) -> None:
    assert str(FIELD) in message
    assert "/" not in message, message
    assert "Traceback" not in message, message
    # An object repr ("<... at 0x7f3a...>"); "8000x8000" is a size, not a repr.
    assert not re.search(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]+", message), message


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return decompression_bomb()


# Rejections


def test_bytes_that_are_not_an_image_are_rejected_as_not_decodable() -> None:
    message = rejection(b"this is plain text, not a picture")
    assert message.startswith(f"{FIELD}: not a decodable image")
    assert "JPEG" in message and "PNG" in message


def test_empty_bytes_are_rejected_as_empty() -> None:
    message = rejection(b"")
    assert message == f"{FIELD}: empty; expected encoded image bytes"


def test_truncated_jpeg_is_rejected_with_a_clear_message() -> None:
    data = noisy_jpeg()
    message = rejection(data[: int(len(data) * 0.7)])
    assert message == f"{FIELD}: image data is truncated or corrupt"


def test_jpeg_cut_inside_its_header_is_rejected_too() -> None:
    message = rejection(truncated_jpeg())
    assert message.startswith(f"{FIELD}: ")
    assert "not a decodable image" in message or "truncated or corrupt" in message


def test_pixel_cap_is_enforced_quickly_for_a_large_single_colour_png(bomb: bytes) -> None:
    start = time.perf_counter()
    message = rejection(bomb)
    elapsed = time.perf_counter() - start
    assert message == f"{FIELD}: image is 8000x8000 = 64000000 pixels, the limit is 36000000"
    assert elapsed < 0.5, f"the cap took {elapsed:.2f}s: pixels were probably decoded first"


def test_pixel_cap_is_checked_from_the_header_before_any_pixel_data_is_read() -> None:
    # No pixel data exists: if decoding came first this would be reported as truncated instead.
    message = rejection(png_header_only(8000, 8000))
    assert "64000000 pixels, the limit is 36000000" in message


def test_an_image_exactly_at_the_pixel_cap_is_accepted() -> None:
    image = decode(encode(Image.new("RGB", (6, 5), (1, 2, 3))), max_pixels=30)
    assert image.size == (6, 5)


def test_an_image_one_pixel_over_the_cap_is_rejected() -> None:
    message = rejection(encode(Image.new("RGB", (6, 5))), max_pixels=29)
    assert "30 pixels, the limit is 29" in message


def test_a_header_far_beyond_pillows_own_bomb_limit_is_reported_against_our_limit() -> None:
    message = rejection(png_header_only(20000, 20000))
    assert message == f"{FIELD}: image exceeds the limit of {MAX_PIXELS} pixels"


def test_an_image_under_a_large_configured_cap_is_not_reported_as_over_it() -> None:
    message = rejection(png_header_only(20000, 20000), max_pixels=500_000_000)  # 400 MP < 500 MP
    assert "limit of 500000000" not in message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"GIF89a\x00\x00", id="garbage"),
        pytest.param(png_header_only(8000, 8000), id="over-cap"),
        pytest.param(png_header_only(20000, 20000), id="pillow-bomb"),
        pytest.param(noisy_jpeg()[:4000], id="truncated"),
    ],
)
def test_error_messages_name_the_field_and_leak_no_paths_tracebacks_or_reprs(data: bytes) -> None:
    assert_safe_for_clients(rejection(data))


# Defined conversions


def test_rgba_is_composited_on_white() -> None:
    data, expected = rgba_case()
    image = decode(data)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_fully_transparent_pixels_become_white_not_black() -> None:
    image = decode(encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0))))
    assert np.all(pixels(image) == 255)


def test_palette_image_decodes_to_its_colours() -> None:
    data, expected = palette_case()
    np.testing.assert_array_equal(pixels(decode(data)), pixels(expected))


def test_palette_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))  # index 0 red, index 1 blue
    image.putpixel((0, 0), 1)
    out = pixels(decode(encode(image, transparency=0)))
    assert tuple(out[0, 0]) == (0, 0, 255)  # opaque blue stays blue
    assert np.all(out.reshape(-1, 3)[1:] == 255)  # transparent red becomes white, not red


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    data, expected = cmyk_case()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = decode(data)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (80, 1))
    data = encode(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = pixels(decode(data))
    assert out.shape == (80, 96, 3)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, -1].tolist() == [255, 255, 255]  # 65535 -> 255
    assert out[0, 48, 0] == round(ramp[0, 48] / 257)  # mid-grey stays mid-grey (clipping would give 255)
    np.testing.assert_array_equal(out[..., 0], np.rint(ramp / 257.0).astype(np.uint8))


def test_grayscale_is_replicated_to_three_channels() -> None:
    data, expected = grayscale_case()
    out = pixels(decode(data))
    np.testing.assert_array_equal(out, pixels(expected))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_exif_orientation_six_is_applied_so_landscape_storage_is_shown_portrait() -> None:
    data, expected = exif_rotated_case()
    assert Image.open(io.BytesIO(data)).size == (120, 60)
    image = decode(data)
    assert image.size == (60, 120)
    np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_animated_gif_gives_the_first_frame() -> None:
    data, expected = animated_case()
    animation = Image.open(io.BytesIO(data))
    assert animation.n_frames == 3
    animation.seek(1)
    second = pixels(animation)
    out = pixels(decode(data))
    np.testing.assert_array_equal(out, pixels(expected))
    assert not np.array_equal(out, second)


def test_one_by_one_image_is_accepted_unchanged() -> None:
    data, expected = tiny_case()
    image = decode(data)
    assert image.size == (1, 1)
    assert image.getpixel((0, 0)) == (10, 200, 30)
    np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_a_one_by_ten_thousand_strip_is_centre_cropped_to_the_aspect_limit() -> None:
    data, expected = strip_case()
    image = decode(data, max_aspect_ratio=20)
    assert image.size == (1, 20)
    np.testing.assert_array_equal(pixels(image), pixels(expected))


def test_a_wide_strip_is_centre_cropped_horizontally() -> None:
    row = np.arange(1000, dtype=np.uint16).astype(np.uint8)
    strip = Image.fromarray(np.repeat(row[None, :, None], 3, axis=2))
    image = decode(encode(strip), max_aspect_ratio=10)
    assert image.size == (10, 1)
    np.testing.assert_array_equal(pixels(image)[0, :, 0], row[495:505])


def test_an_image_within_the_aspect_limit_is_not_cropped() -> None:
    image = decode(encode(Image.new("RGB", (200, 10))), max_aspect_ratio=20)
    assert image.size == (200, 10)


def test_a_base64_data_url_decodes_to_the_same_picture_as_the_raw_bytes() -> None:
    raw = encode(scene(seed=3), "PNG")
    url = b"data:image/png;base64," + base64.b64encode(raw)
    from_url = np.asarray(decode_image(url, FieldRef("image", 0), 10_000_000, 20))
    assert np.array_equal(from_url, np.asarray(decode_image(raw, FieldRef("image", 0), 10_000_000, 20)))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"data:image/png,abc", "data:<type>;base64,<data>"),
        (b"data:image/png;base64", "data:<type>;base64,<data>"),
        (b"data:image/png;base64,@@not base64@@", "base64 data is malformed"),
    ],
)
def test_malformed_data_urls_are_rejected_naming_the_field(payload: bytes, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=r"image\[2\]") as caught:
        image_payload(payload, FieldRef("image", 2))
    assert expected in str(caught.value)
