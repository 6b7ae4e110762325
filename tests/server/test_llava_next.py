"""LLaVA-NeXT served end to end on tiny-llava-next beside LLaVA in the session's server: greedy tokens equal Hugging
Face ``generate`` for images whose sizes and aspect ratios pick every grid, several images in one prompt, text only
and a multi-turn chat, all 8 in flight at once; bad images get LLaVA's errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from transformers.image_processing_utils import select_best_resolution

from client import Completion, InvalidInputError, VLMClient
from client.models import ModelNames
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.reference import LlavaReference
from tests.server.test_llava_bad_input import messages_array, stream_error

pytestmark = pytest.mark.timeout(300)

NEXT = ModelNames(llava="llava_next", decoder="llava_next_decoder")
PINPOINTS = [[32, 64], [64, 32], [64, 64]]  # tiny-llava-next's (height, width) grids of 32-pixel tiles


def user(text: str, images: int = 0) -> list[dict]:
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": text}]}]


def grid(image: Image.Image) -> tuple[int, int]:
    """(rows, columns) of tiles, by transformers' own rule."""
    height, width = select_best_resolution((image.height, image.width), PINPOINTS)
    return height // 32, width // 32


CASES = [
    (user("describe the image.", 1), [scene(64, 64, seed=1)], 20),
    (user("what is on the left?", 1), [scene(100, 40, seed=2)], 16),
    (user("what is at the top?", 1), [scene(40, 100, seed=3)], 16),
    (user("how many shapes?", 1), [scene(300, 200, seed=4)], 24),  # 2x2, rows of padding cut off
    (user("compare the two images.", 2), [scene(90, 30, seed=5), scene(30, 90, seed=6)], 20),
    (user("what colour is it?", 1), [scene(33, 31, seed=7)], 12),
    (user("name a shape."), [], 10),
    (
        [*user("what is it?", 1), {"role": "assistant", "content": "a star."}, *user("and its colour?")],
        [scene(24, 90)],
        14,
    ),
]


def test_every_grid_is_picked_by_the_cases() -> None:
    assert {grid(image) for _, images, _ in CASES for image in images} == {(1, 2), (2, 1), (2, 2)}


def test_greedy_generation_equals_hf_generate_for_every_grid_with_8_requests_in_flight(
    url: str, protocol: str, llava_next_reference: LlavaReference
) -> None:
    def generate(case: tuple[list[dict], list[Image.Image], int]) -> Completion:
        messages, images, max_tokens = case
        with VLMClient(url, protocol=protocol, models=NEXT) as client:
            return client.generate(messages, [encode(image) for image in images], max_tokens=max_tokens)

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        completions = list(pool.map(generate, CASES))
    for completion, (messages, images, max_tokens) in zip(completions, CASES, strict=True):
        assert completion.token_ids == llava_next_reference.greedy(messages, images, max_tokens)
        # The prompt's length counts each image's own tokens, which depend on the grid its size picked.
        assert completion.prompt_tokens == llava_next_reference.inputs(messages, images)["input_ids"].shape[1]
        assert completion.completion_tokens == len(completion.token_ids)


@pytest.mark.parametrize(
    ("images", "fragments"),
    [
        ([encode(scene(seed=i)) for i in range(5)], ("image", "at most 4")),
        ([encode(scene())[:40]], ("image",)),
        ([b"not an image"], ("image",)),
    ],
    ids=["too many", "truncated", "not an image"],
)
def test_bad_images_get_the_same_errors_as_llavas(
    url: str, protocol: str, images: list[bytes], fragments: tuple[str, ...]
) -> None:
    messages = user("what is it?", len(images))
    errors = []
    for models in (ModelNames(), NEXT):
        with VLMClient(url, protocol=protocol, models=models) as client, pytest.raises(InvalidInputError) as caught:
            client.generate(messages, images, max_tokens=2)
        errors.append(caught.value)
    llava, next_ = errors
    assert all(fragment in str(next_) for fragment in fragments), str(next_)
    assert (next_.field, str(next_).replace("llava_next", "llava")) == (llava.field, str(llava))
    with VLMClient(url, protocol=protocol, models=NEXT) as client:  # and the decoder still serves
        assert client.generate(user("ok?", 1), [encode(scene(50, 50))], max_tokens=2).completion_tokens >= 1


def test_image_lengths_outside_the_padded_embeddings_are_rejected_by_name(server: TritonServer) -> None:
    arrays = {
        "messages": messages_array(user("what is it?", 1)),
        "image_embeds": np.zeros((1, 5, 64), np.float32),
        "image_tokens": np.array([9], np.int32),
    }
    message = stream_error(server, "llava_next_decoder", arrays)
    assert "image_tokens" in message and "1 to 5" in message
