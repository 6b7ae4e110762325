"""benchmarks.inputs: synthetic images, unique bytes with the same pixels, texts of a set length."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.inputs import captions, parse_size, prompts, synthetic_images, unique


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_a_serial_changes_the_bytes_but_not_the_pixels(image_format: str) -> None:
    (image,) = synthetic_images(1, (64, 48), image_format, seed=1)
    first, second = unique(image, 1), unique(image, 2)
    assert len({image, first, second}) == 3
    pixels = [np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) for blob in (image, first, second)]
    assert Image.open(io.BytesIO(first)).size == (64, 48)
    assert all(np.array_equal(pixels[0], other) for other in pixels[1:])


def test_synthetic_images_repeat_from_their_seed() -> None:
    assert synthetic_images(2, (32, 32), "png", seed=3) == synthetic_images(2, (32, 32), "png", seed=3)
    assert captions(3, seed=0) == captions(3, seed=0)


@pytest.mark.parametrize("text", ["640x480", "0x10", "big", "1x2x3"])
def test_image_sizes_parse_or_name_the_flag(text: str) -> None:
    if text == "640x480":
        assert parse_size(text) == (640, 480)
        return
    with pytest.raises(ValueError, match="--image-size"):
        parse_size(text)


def test_prompts_have_the_asked_number_of_tokens(tiny_llava) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llava)
    for text in prompts(3, 20, seed=0, tokenizer=tokenizer):
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == pytest.approx(20, abs=1)
