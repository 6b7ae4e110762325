"""benchmarks.inputs: synthetic images, unique bytes with the same pixels, texts of a set length."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.inputs import MAX_IMAGE_SIZES, captions, parse_size, parse_sizes, prompts, synthetic_images, unique


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


def test_mixed_sizes_are_taken_in_turn_by_the_images_and_so_by_the_requests() -> None:
    sizes = parse_sizes("64x48, 200x100,32")
    assert sizes == [(64, 48), (200, 100), (32, 32)]
    images = synthetic_images(7, sizes, "jpeg", seed=2)
    assert [Image.open(io.BytesIO(image)).size for image in images] == [*sizes, *sizes, sizes[0]]
    assert synthetic_images(2, [(64, 48)], "png", seed=3) == synthetic_images(2, (64, 48), "png", seed=3)


@pytest.mark.parametrize("text", ["", " , ", "64x48,0x1", ",".join(["8"] * (MAX_IMAGE_SIZES + 1))])
def test_a_bad_size_list_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match="--image-size"):
        parse_sizes(text)


def test_prompts_have_the_asked_number_of_tokens(tiny_llava) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llava)
    for text in prompts(3, 20, seed=0, tokenizer=tokenizer):
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == pytest.approx(20, abs=1)
