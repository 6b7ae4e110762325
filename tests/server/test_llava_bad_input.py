"""Bad generation requests get one clear error naming the field and the limit, before any decoding; the
decoder stays up and serves the next request."""

from __future__ import annotations

import json
import queue
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from client import InvalidInputError, VLMClient
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.statistics import metric_total
from tests.server.test_bad_input import assert_clean, grpc_inputs

IMAGE_TURN = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}]
TEXT_TURN = [{"role": "user", "content": "hello"}]
TYPES = {
    np.dtype(np.int32): "INT32",
    np.dtype(np.float32): "FP32",
    np.dtype(np.int64): "INT64",
    np.dtype(object): "BYTES",
}


def stream_error(server: TritonServer, model: str, arrays: dict[str, np.ndarray]) -> str:
    """Send raw tensors on a gRPC stream; the error message of the single response."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), TYPES[array.dtype])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    try:
        client.async_stream_infer(model, inputs)
        _, error = responses.get(timeout=30)
    finally:
        client.stop_stream()
        client.close()
    assert error is not None, "the request was accepted"
    return error.message()


def messages_array(messages: object) -> np.ndarray:
    return np.array([json.dumps(messages).encode()], dtype=object)


def assert_decoder_still_serving(server: TritonServer) -> None:
    with VLMClient(server.grpc_url) as client:
        assert client.generate(TEXT_TURN, max_tokens=2).completion_tokens >= 1
        assert client.generate(IMAGE_TURN, [encode(scene(seed=50))], max_tokens=2).completion_tokens >= 1


@pytest.mark.parametrize(
    ("raw_messages", "fragments"),
    [
        (b"\xff\xfe not utf-8", ("messages", "UTF-8")),
        (b"[]", ("messages", "non-empty")),
        (b'[{"role": "user", "content": "hi"', ("messages", "not valid JSON")),
        (b'{"role": "user"}', ("messages", "non-empty JSON list")),
        (b'[{"role": "robot", "content": "hi"}]', ("messages[0].role", "user")),
        (b'[{"role": "user", "content": [{"type": "audio"}]}]', ("messages[0].content[0]",)),
        (b'[{"role": "user", "content": [{"type": "video"}]}]', ("messages", "1 video placeholders", "0 videos")),
        (b'[{"role": "assistant", "content": "hi"}]', ("messages", "last message", "user")),
        (json.dumps([{"role": "user", "content": "look: <image> here"}]).encode(), ("messages[0]", "<image>")),
    ],
)
def test_malformed_conversations_are_rejected(server: TritonServer, raw_messages: bytes, fragments: tuple) -> None:
    message = stream_error(server, "llava_decoder", {"messages": np.array([raw_messages], dtype=object)})
    assert_clean(message, *fragments)
    assert_decoder_still_serving(server)


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"max_tokens": 0}, ("max_tokens", "[1, 2048]")),
        ({"max_tokens": -5}, ("max_tokens", "[1, 2048]")),
        ({"max_tokens": 100_000}, ("max_tokens", "[1, 2048]")),
        ({"temperature": float("nan")}, ("temperature",)),
        ({"temperature": -0.5}, ("temperature",)),
        ({"top_p": 0.0}, ("top_p", "(0, 1]")),
        ({"top_p": 1.5}, ("top_p", "(0, 1]")),
        ({"top_k": -1}, ("top_k",)),
        ({"stop": [f"stop {i}" for i in range(1000)]}, ("stop", "16", "1000")),
    ],
)
def test_out_of_range_generation_parameters_are_rejected(
    server: TritonServer, params: dict, fragments: tuple, url: str, protocol: str
) -> None:
    with VLMClient(url, protocol=protocol) as client, pytest.raises(InvalidInputError) as caught:
        client.generate(TEXT_TURN, **params)
    assert_clean(str(caught.value), *fragments)
    assert_decoder_still_serving(server)


def test_a_prompt_and_max_tokens_over_the_context_are_rejected_before_any_decoding(server: TritonServer) -> None:
    tokens_before = metric_total(server, "vlm_decoder_generated_tokens_total")
    with VLMClient(server.grpc_url) as client, pytest.raises(InvalidInputError) as caught:
        client.generate(IMAGE_TURN, [encode(scene(seed=51))], max_tokens=2040)
    assert_clean(str(caught.value), "max_tokens", "image tokens", "context length of 2048")
    assert metric_total(server, "vlm_decoder_generated_tokens_total") == tokens_before
    assert_decoder_still_serving(server)


def test_a_prompt_longer_than_the_context_is_rejected(server: TritonServer) -> None:
    long_turn = [{"role": "user", "content": "red square " * 1600}]
    with VLMClient(server.grpc_url) as client, pytest.raises(InvalidInputError) as caught:
        client.generate(long_turn)
    assert_clean(str(caught.value), "messages", "context length of 2048")
    assert_decoder_still_serving(server)


@pytest.mark.parametrize(
    ("placeholders", "images", "fragments"),
    [
        (2, 1, ("messages", "2 image placeholders", "1 images")),
        (1, 2, ("messages", "1 image placeholders", "2 images")),
        (0, 1, ("messages", "0 image placeholders", "1 images")),
        (5, 5, ("image", "at most 4")),
    ],
)
def test_images_and_placeholders_must_match_within_the_limit(
    server: TritonServer, placeholders: int, images: int, fragments: tuple, url: str, protocol: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "image"}] * placeholders + [{"type": "text", "text": "?"}]}]
    blobs = [encode(scene(seed=60 + i)) for i in range(images)]
    with VLMClient(url, protocol=protocol) as client, pytest.raises(InvalidInputError) as caught:
        client.generate(messages, blobs, max_tokens=2)
    assert_clean(str(caught.value), *fragments)
    assert_decoder_still_serving(server)


def test_image_placeholders_without_images_are_rejected_on_the_text_only_decoder(server: TritonServer) -> None:
    message = stream_error(server, "llava_decoder", {"messages": messages_array(IMAGE_TURN)})
    assert_clean(message, "messages", "1 image placeholders", "0 images")


def test_image_embeddings_of_the_wrong_shape_are_rejected(server: TritonServer) -> None:
    embeds = np.zeros((1, 3, 5), np.float32)
    message = stream_error(server, "llava_decoder", {"messages": messages_array(IMAGE_TURN), "image_embeds": embeds})
    assert_clean(message, "image_embeds", "expected shape")
    assert_decoder_still_serving(server)


def test_a_cancel_request_names_only_a_request_id(server: TritonServer) -> None:
    cancel = np.array([b"some-id"], dtype=object)
    message = stream_error(server, "llava_decoder", {"cancel": cancel, "messages": messages_array(TEXT_TURN)})
    assert_clean(message, "cancel", "only the id")
    assert_clean(stream_error(server, "llava_decoder", {"cancel": np.array([b" "], dtype=object)}), "cancel", "empty")
    assert_decoder_still_serving(server)


def test_a_request_without_messages_or_cancel_is_rejected(server: TritonServer) -> None:
    message = stream_error(server, "llava_decoder", {"max_tokens": np.array([3], np.int32)})
    assert_clean(message, "messages", "required")


def test_non_finite_image_embeddings_are_rejected_by_name(server: TritonServer) -> None:
    embeds = np.full((1, 16, 64), np.nan, np.float32)
    message = stream_error(server, "llava_decoder", {"messages": messages_array(IMAGE_TURN), "image_embeds": embeds})
    assert_clean(message, "image_embeds", "finite")


def test_the_cached_vision_tower_answers_non_finite_pixels_the_same_way_every_time(server: TritonServer) -> None:
    """Triton 2.51 would cache an error as an empty success, so the cached encoders compute instead of failing
    (garbage in, garbage out, and the decoder rejects the result by name)."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    pixels = np.full((1, 3, 64, 64), np.inf, np.float32)
    for _ in range(2):
        result = client.infer("llava_vision", grpc_inputs("FP32", pixel_values=pixels))
        features = result.as_numpy("image_features")
        assert features is not None and features.shape == (1, 16, 32)
        assert not np.isfinite(features).all()
