"""The pixels a vLLM-encoded family's preprocess step hands its decoder: ``DecodedImages`` packs the decoded images
(LLaVA's decoding, limits and errors), ``PixelImages`` turns them back into the same pictures and counts their
tokens with the checkpoint's processor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.families.limits import image_limits
from serving.errors import InvalidInputError
from serving.generation.pixel_images import PixelImages, image_input
from serving.triton_models.image_preprocess import DecodedImages
from tests.images import encode, scene


def decoded_images() -> DecodedImages:
    model = DecodedImages()
    model.parameters = image_limits(max_images=4)
    model.setup()
    return model


@pytest.fixture(scope="module")
def pixel_images(tiny_idefics3: Path) -> PixelImages:
    return PixelImages(tiny_idefics3)


def test_decoded_images_round_trip_to_the_same_pictures(pixel_images: PixelImages) -> None:
    pictures = [scene(96, 80, seed=1), scene(20, 20, seed=2), scene(150, 40, seed=3)]
    packed = decoded_images().handle({"image": np.array([encode(p) for p in pictures], dtype=object)})
    assert packed["pixels"].dtype == np.uint8
    assert packed["image_sizes"].tolist() == [[80, 96], [20, 20], [40, 150]]
    for ours, theirs in zip(pixel_images.images(packed), pictures, strict=True):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_decoded_images_keep_llavas_limits_and_errors() -> None:
    with pytest.raises(InvalidInputError, match="not a decodable image"):
        decoded_images().handle({"image": np.array([encode(scene()), b"no image"], dtype=object)})
    with pytest.raises(InvalidInputError, match="at most 4"):
        decoded_images().handle({"image": np.array([encode(scene())] * 5, dtype=object)})


def test_pixels_that_do_not_match_their_sizes_are_refused_by_name(pixel_images: PixelImages) -> None:
    sizes = np.array([[2, 3]], dtype=np.int32)
    with pytest.raises(InvalidInputError, match=r"pixels.*holds 17 values; image_sizes describe 18"):
        pixel_images.images({"pixels": np.zeros(17, np.uint8), "image_sizes": sizes})
    with pytest.raises(InvalidInputError, match=r"image_sizes.*at least 1"):
        pixel_images.images({"pixels": np.zeros(0, np.uint8), "image_sizes": np.array([[0, 3]], dtype=np.int32)})
    with pytest.raises(InvalidInputError, match="come together"):
        pixel_images.images({"pixels": np.zeros(18, np.uint8)})
    assert pixel_images.images({}) == []


def test_the_token_count_is_the_processors(pixel_images: PixelImages) -> None:
    """Each tile: a marker, its row/column token and 4 image tokens; a newline after each row; then a newline, the
    global view (marker, tag, 4 tokens, marker): 3 x 3 tiles make 3 x (3 x 6 + 1) + 1 + 7 = 65, a 1 x 3 strip 27."""
    assert pixel_images.tokens([scene(96, 80)]) == 65
    assert pixel_images.tokens([scene(150, 40)]) == 27
    assert pixel_images.tokens([scene(96, 80), scene(150, 40)]) == 92


def test_the_image_input_parameter_is_checked() -> None:
    assert image_input({}) == "embeds"
    assert image_input({"image_input": "pixels"}) == "pixels"
    with pytest.raises(ValueError, match="image_input must be one of embeds, pixels"):
        image_input({"image_input": "tiles"})
