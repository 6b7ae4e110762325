"""A pixel budget (min_pixels / max_pixels) sent to a model whose preprocessing has none (LLaVA resizes every image to
its tower's square) is refused naming the field, through the gateway (its catalog reads the chat ensemble's declared
inputs) and from Triton directly (the ensemble declares no such input); both servers answer the next request."""

from __future__ import annotations

import openai
import pytest

from client import InvalidInputError, VLMClient
from serving.launcher import TritonServer
from tests.gateway.conftest import data_url
from tests.images import encode, scene

pytestmark = pytest.mark.timeout(300)

CHAT = [
    {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": data_url(encode(scene(seed=30)))}},
            {"type": "text", "text": "what is it?"},
        ],
    }
]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"mm_processor_kwargs": {"max_pixels": 50_000}}, "mm_processor_kwargs.max_pixels"),
        ({"min_pixels": 784}, "min_pixels"),
    ],
)
def test_the_gateway_refuses_a_budget_for_llava_naming_the_parameter(
    sdk: openai.OpenAI, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="llava", messages=CHAT, max_tokens=2, extra_body=extra)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param and error["code"] == "unsupported_parameter"
    assert "the model 'llava' takes no pixel budget" in error["message"]
    reply = sdk.chat.completions.create(model="llava", messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
    assert reply.usage is not None and reply.usage.completion_tokens >= 1


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_refuses_a_budget_for_llava_and_the_client_names_the_field(server: TritonServer, protocol: str) -> None:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}]
    with VLMClient(url, protocol=protocol) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.generate(question, [encode(scene(seed=31))], max_tokens=2, max_pixels=50_000)
        assert caught.value.field == "max_pixels"
        assert str(caught.value) == "max_pixels: the model 'llava' takes no such input"
        assert client.generate(question, [encode(scene(seed=32))], max_tokens=2).completion_tokens >= 1
