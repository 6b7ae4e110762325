"""The real OpenAI SDK, sync and async, against the real gateway and tritonserver on the tiny checkpoints: the
same completions as ``VLMClient.generate`` token for token (greedy), streamed deltas that concatenate to them,
matching usage, embeddings equal to ``VLMClient``'s, and the SDK's exception classes for the error statuses."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest

from client import VLMClient
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from tests.conftest import NAMED_CLIP
from tests.gateway.conftest import API_KEY, TIMEOUT_S, data_url
from tests.images import encode, scene
from tests.reference import LlavaReference, min_row_cosine

QUESTION = "what is in the image?"


def image_message(image: bytes, text: str = QUESTION) -> list[dict]:
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}}, {"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def client_message(text: str = QUESTION, images: int = 1) -> list[dict]:
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": text}]}]


def test_a_chat_completion_with_an_image_equals_vlm_client_token_for_token(
    sdk: openai.OpenAI, server: TritonServer
) -> None:
    image = encode(scene(seed=41))
    reply = sdk.chat.completions.create(model="llava", messages=image_message(image), max_tokens=24, logprobs=True)
    with VLMClient(server.grpc_url) as direct:
        expected = direct.generate(client_message(), [image], max_tokens=24)
    (choice,) = reply.choices
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert [t.token for t in choice.logprobs.content] == expected.tokens
    np.testing.assert_allclose([t.logprob for t in choice.logprobs.content], expected.logprobs, rtol=1e-6)
    assert choice.finish_reason == expected.finish_reason
    assert reply.usage.prompt_tokens == expected.prompt_tokens
    assert reply.usage.completion_tokens == expected.completion_tokens == len(expected.token_ids)
    assert reply.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens
    assert reply.object == "chat.completion" and reply.model == "llava" and reply.id.startswith("chatcmpl-")


def test_streamed_deltas_concatenate_to_the_unstreamed_content_with_usage_last(sdk: openai.OpenAI) -> None:
    messages = image_message(encode(scene(seed=42)), "describe the image.")
    whole = sdk.chat.completions.create(model="llava", messages=messages, max_tokens=40)
    chunks = list(
        sdk.chat.completions.create(
            model="llava", messages=messages, max_tokens=40, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1]) and len({c.id for c in chunks}) == 1


def test_the_async_sdk_gets_the_same_answers_concurrently(gateway: GatewayProcess, server: TritonServer) -> None:
    images = [encode(scene(seed=50 + k)) for k in range(4)]

    async def run() -> tuple[list, list[str]]:
        async with openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S
        ) as client:
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(model="llava", messages=image_message(i), max_tokens=16)
                    for i in images
                )
            )
            stream = await client.chat.completions.create(
                model="llava", messages=image_message(images[0]), max_tokens=16, stream=True
            )
            pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
            return list(replies), pieces

    replies, pieces = asyncio.run(run())
    with VLMClient(server.grpc_url) as direct:
        expected = [direct.generate(client_message(), [i], max_tokens=16) for i in images]
    assert [r.choices[0].message.content for r in replies] == [e.text for e in expected]
    assert [r.usage.completion_tokens for r in replies] == [e.completion_tokens for e in expected]
    assert "".join(pieces) == expected[0].text


def test_a_text_only_conversation_with_a_system_turn_and_stop_strings(sdk: openai.OpenAI, server: TritonServer) -> None:
    messages = [{"role": "system", "content": "You count shapes."}, {"role": "user", "content": "how many?"}]
    with VLMClient(server.grpc_url) as direct:
        free = direct.generate(messages, max_tokens=30)
    stop = free.text[len(free.text) // 2 : len(free.text) // 2 + 2]
    assert stop.strip(), f"the completion is too short to pick a stop string: {free.text!r}"
    with VLMClient(server.grpc_url) as direct:
        expected = direct.generate(messages, max_tokens=30, stop=[stop])
    reply = sdk.chat.completions.create(model="llava", messages=messages, max_tokens=30, stop=stop)
    assert reply.choices[0].message.content == expected.text == free.text[: free.text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_n_seeded_choices_each_repeat_their_own_sample(sdk: openai.OpenAI) -> None:
    messages = image_message(encode(scene(seed=43)))
    ask = {"model": "llava", "messages": messages, "max_tokens": 12, "temperature": 1.0, "seed": 7, "n": 3}
    first, again = sdk.chat.completions.create(**ask), sdk.chat.completions.create(**ask)
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in again.choices]
    assert len(set(texts)) > 1, "three seeds gave one sample"
    single = sdk.chat.completions.create(**{**ask, "n": 1, "seed": 8})
    assert single.choices[0].message.content == texts[1]  # choice k samples with seed + k


def test_embeddings_through_the_sdk_equal_vlm_client_as_base64_and_float(
    sdk: openai.OpenAI, server: TritonServer
) -> None:
    texts = ["a red circle", "two blue squares above a star", "x"]
    images = [encode(scene(seed=s)) for s in (44, 45)]
    items = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
    with VLMClient(server.grpc_url) as direct:
        text_vectors = direct.text_embeddings(texts)
        image_vectors = direct.embed_images(images)
    default = sdk.embeddings.create(model="clip", input=texts)  # the SDK asks for base64 and decodes it
    floats = sdk.embeddings.create(model="clip", input=texts, encoding_format="float")
    for reply in (default, floats):
        assert [d.index for d in reply.data] == [0, 1, 2]
        assert min_row_cosine(np.array([d.embedding for d in reply.data]), text_vectors.embeddings) >= 0.9999
        assert reply.usage.prompt_tokens == reply.usage.total_tokens == sum(text_vectors.token_counts)
    mixed = sdk.embeddings.create(model="clip", input=[texts[0], *items], encoding_format="float")  # type: ignore[list-item]
    vectors = np.array([d.embedding for d in mixed.data])
    assert min_row_cosine(vectors[1:], image_vectors) >= 0.9999
    assert min_row_cosine(vectors[:1], text_vectors.embeddings[:1]) >= 0.9999
    assert mixed.usage.prompt_tokens == text_vectors.token_counts[0]  # images count no tokens
    one = sdk.embeddings.create(model="clip", input="a red circle")
    assert len(one.data) == 1 and len(one.data[0].embedding) == text_vectors.embeddings.shape[1]


def test_raw_base64_embeddings_are_little_endian_float32(http, server: TritonServer) -> None:
    reply = http.post("/v1/embeddings", json={"model": "clip", "input": ["a star"], "encoding_format": "base64"})
    assert reply.status_code == 200
    vector = np.frombuffer(base64.b64decode(reply.json()["data"][0]["embedding"]), dtype="<f4")
    with VLMClient(server.grpc_url) as direct:
        np.testing.assert_allclose(vector, direct.embed_texts(["a star"])[0], atol=1e-6)


def test_the_models_route_lists_every_served_model_by_name(sdk: openai.OpenAI) -> None:
    assert {model.id for model in sdk.models.list()} == {"llava", "llava_next", "clip", "siglip", "siglip2", NAMED_CLIP}


@pytest.mark.parametrize(
    ("ask", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 3}}}}, None),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 99}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_parameters_the_service_cannot_honour_raise_bad_request_naming_them(
    sdk: openai.OpenAI, ask: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="llava", messages=[{"role": "user", "content": "hi"}], **ask)
    error = raised.value.body
    if param is None:  # a schema the gateway passes on: the decoder names the field
        param = "response_format.json_schema.schema"
        assert param in error["message"], error
        return
    assert error["param"] == param and error["message"].startswith(param), error
    assert error["type"] == "invalid_request_error"


def test_dimensions_other_than_the_models_are_a_bad_request(sdk: openai.OpenAI) -> None:
    size = len(sdk.embeddings.create(model="clip", input="a", encoding_format="float").data[0].embedding)
    assert len(sdk.embeddings.create(model="clip", input="a", dimensions=size).data[0].embedding) == size
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        sdk.embeddings.create(model="clip", input="a", dimensions=size + 1)


def test_the_sdk_raises_its_own_classes_for_401_and_404(gateway: GatewayProcess, sdk: openai.OpenAI) -> None:
    stranger = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="llava", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["code"] == "model_not_found" and raised.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="gpt-4o", input="hi")


def test_a_chat_naming_llava_next_is_answered_by_llava_next(
    sdk: openai.OpenAI, server: TritonServer, llava_next_reference: LlavaReference
) -> None:
    """Routed by name to the anyres VLM: its greedy tokens and its image's own token count, not LLaVA's 16."""
    picture = scene(100, 40, seed=43)  # a 1x2 grid: 52 image tokens
    reply = sdk.chat.completions.create(model="llava_next", messages=image_message(encode(picture)), max_tokens=12)
    with VLMClient(server.grpc_url, chat_model="llava_next") as direct:
        expected = direct.generate(client_message(), [encode(picture)], max_tokens=12)
    assert expected.token_ids == llava_next_reference.greedy(client_message(), [picture], 12)
    assert reply.model == "llava_next" and reply.choices[0].message.content == expected.text
    assert reply.usage.prompt_tokens == expected.prompt_tokens
    assert expected.prompt_tokens == llava_next_reference.inputs(client_message(), [picture])["input_ids"].shape[1]
