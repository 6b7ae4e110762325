"""Each client error produced for real by the server, sync and async, over both protocols: a bad image is
invalid input and is tried once; a tiny timeout is a timeout; a model the server does not serve is not
ready; a stream the server stops midway is interrupted, with the text received so far."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client import (
    AsyncVLMClient,
    InvalidInputError,
    ModelNames,
    ModelNotReadyError,
    RequestTimeoutError,
    RetryPolicy,
    StreamInterruptedError,
    VLMClient,
    VLMError,
    prompts,
)
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.statistics import wait_for_idle_decoder


def _counting_policy(failures: list[VLMError]) -> RetryPolicy:
    return RetryPolicy(attempts=3, backoff_s=0.01, on_failure=lambda attempt, error: failures.append(error))


def test_a_bad_image_is_invalid_input_and_is_tried_once(url: str, protocol: str) -> None:
    failures: list[VLMError] = []
    with VLMClient(url, protocol=protocol, retry=_counting_policy(failures)) as client:
        with pytest.raises(InvalidInputError, match=r"image\[0\]: not a decodable image"):
            client.embed_images([b"not an image"])
        with pytest.raises(InvalidInputError, match=r"image\[0\]: not a decodable image"):
            client.caption(b"not an image", max_tokens=4)
    assert len(failures) == 2

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol, retry=_counting_policy(failures)) as client:
            with pytest.raises(InvalidInputError, match=r"image\[0\]: not a decodable image"):
                await client.classify(b"not an image", ["a", "b"])
            with pytest.raises(InvalidInputError, match=r"image\[0\]: not a decodable image"):
                await client.ask(b"not an image", "what?", max_tokens=4)

    asyncio.run(run())
    assert len(failures) == 4 and all(isinstance(f, InvalidInputError) for f in failures)


def test_a_rejection_reaches_the_client_with_its_field_as_data(server: TritonServer, url: str, protocol: str) -> None:
    """Unary through the clip_image_embed ensemble, streamed through llava's, text-only from the decoder, async too;
    a raw tritonclient user reads the same field and limit in the message."""
    image = encode(scene(seed=112))
    with VLMClient(url, protocol=protocol) as client:
        with pytest.raises(InvalidInputError) as unary:
            client.embed_images([image, b"not an image"])
        with pytest.raises(InvalidInputError) as streamed:
            client.caption(b"", max_tokens=4)
        with pytest.raises(InvalidInputError) as text_only:
            client.generate(prompts.user_turn("hi", 0), max_tokens=10**6)
    assert (unary.value.field, unary.value.index, unary.value.member) == ("image", 1, "")
    assert str(unary.value).startswith("image[1]: not a decodable image")
    assert (streamed.value.field, streamed.value.index) == ("image", 0)
    assert (text_only.value.field, text_only.value.index) == ("max_tokens", None)
    assert "1000000" in text_only.value.reason and "in ensemble" not in str(unary.value)

    async def run() -> InvalidInputError:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            with pytest.raises(InvalidInputError) as caught:
                await client.ask(image, "what?", max_tokens=4, temperature=9.0)
        return caught.value

    assert asyncio.run(run()).field == "temperature"
    with grpcclient.InferenceServerClient(server.grpc_url) as raw:
        inputs = [grpcclient.InferInput("image", [1], "BYTES")]
        inputs[0].set_data_from_numpy(np.array([b"not an image"], dtype=object))
        with pytest.raises(InferenceServerException) as caught:
            raw.infer("clip_image_embed", inputs)
    assert "image[0]: not a decodable image" in caught.value.message()
    assert caught.value.message().endswith(" [field=image index=0]")


def test_a_tiny_timeout_raises_the_timeout_error(server: TritonServer, url: str, protocol: str) -> None:
    image = encode(scene(seed=110))
    with VLMClient(url, protocol=protocol, timeout=0.001) as client, pytest.raises(RequestTimeoutError):
        client.caption(image, max_tokens=64)  # one response, after 64 decode steps

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol, timeout=0.001) as client:
            with pytest.raises(RequestTimeoutError):
                await client.caption(image, max_tokens=64)

    asyncio.run(run())
    wait_for_idle_decoder(server)  # the abandoned requests were cancelled


def test_a_model_the_server_does_not_serve_is_not_ready(url: str, protocol: str) -> None:
    missing = ModelNames(text_embed="no_such_model", llava="no_such_model")
    with VLMClient(url, protocol=protocol, models=missing) as client:
        with pytest.raises(ModelNotReadyError, match="no_such_model"):
            client.embed_texts(["a dog"])
        with pytest.raises(ModelNotReadyError, match="no_such_model"):
            client.caption(encode(scene(seed=111)), max_tokens=4)

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol, models=missing) as client:
            with pytest.raises(ModelNotReadyError, match="no_such_model"):
                await client.embed_texts(["a dog"])
            with pytest.raises(ModelNotReadyError, match="no_such_model"):
                await client.caption(encode(scene(seed=111)), max_tokens=4)

    asyncio.run(run())


def _cancel_on_the_server(server: TritonServer, request_id: str) -> None:
    """What an operator (or another client) does: ask the decoder to stop a request by its id."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    cancel = urllib.request.Request(
        f"http://{server.http_url}/v2/models/llava_decoder/generate",
        data=json.dumps({"cancel": request_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(cancel, timeout=10) as response:
        assert json.loads(response.read())["cancelled"] == 1


def test_a_stream_stopped_by_the_server_is_interrupted_with_its_partial_text(
    server: TritonServer, url: str, protocol: str
) -> None:
    with VLMClient(url, protocol=protocol) as client:
        request_id = uuid.uuid4().hex
        messages = prompts.user_turn("describe the image.", 0)
        stream = client.chat(messages, max_tokens=1800, ignore_eos=True, request_id=request_id)  # outlives the cancel
        received = next(stream)
        _cancel_on_the_server(server, request_id)
        with pytest.raises(StreamInterruptedError) as interrupted:
            for piece in stream:
                received += piece  # type: ignore[operator]
    assert interrupted.value.partial_text == received and received
    assert "cancelled" in str(interrupted.value)
    wait_for_idle_decoder(server)
