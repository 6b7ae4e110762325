"""gateway.images: data URLs decoded strictly and capped before decoding, images checked by their header."""

from __future__ import annotations

import base64

import pytest

from gateway.errors import ApiError
from gateway.images import check_image, decode_data_url
from tests.images import encode, scene

PNG = encode(scene(seed=1))


def refused(call, *args: object) -> ApiError:
    with pytest.raises(ApiError) as raised:
        call(*args)
    assert raised.value.status == 400 and raised.value.param == "p"
    return raised.value


def test_a_base64_data_url_gives_its_bytes() -> None:
    assert decode_data_url("data:image/png;base64," + base64.b64encode(PNG).decode(), "p", 1 << 20) == PNG
    assert decode_data_url("data:;base64," + base64.b64encode(PNG).decode(), "p", 1 << 20) == PNG


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png,rawbytes", "invalid_image_url"),
        ("data:text/html;base64,PGI+", "invalid_image_url"),
        ("data:image/png;base64,not*base64", "invalid_image_url"),
        ("data:image/png;base64," + "A" * 2_000_000, "image_too_large"),
    ],
)
def test_bad_data_urls_are_refused_naming_the_parameter(url: str, code: str) -> None:
    assert refused(decode_data_url, url, "p", 1 << 20).code == code


def test_images_are_checked_by_header_for_format_and_size() -> None:
    assert check_image(PNG, "p", 1 << 20) == PNG
    assert check_image(encode(scene(seed=2), "JPEG"), "p", 1 << 20)
    assert refused(check_image, b"", "p", 100).code == "invalid_image"
    assert refused(check_image, b"%PDF-1.7 not an image", "p", 1 << 20).code == "invalid_image"
    assert refused(check_image, PNG, "p", 10).code == "image_too_large"
