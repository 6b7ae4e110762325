"""The OpenAI sampling and output options vLLM gives the decoder, through the real SDK and gateway: structured
outputs (json_schema for 20 schemas at once, json_object), top_logprobs equal to Hugging Face's log-softmax,
penalties that change a repetitive greedy answer, and the length fields benchmark clients send."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import openai
import pytest
import torch

from tests.gateway.conftest import TIMEOUT_S
from tests.reference import LlavaReference

PROMPT = [{"role": "user", "content": "a red square above a blue circle"}]


def schemas() -> list[dict]:
    """20 different schemas: objects of scalars, enums, arrays, nesting. Every value is bounded (random weights
    write digits or letters for as long as a schema lets them)."""
    kinds: list[dict] = [
        {"type": "string", "maxLength": 12},
        {"type": "integer", "minimum": 0, "maximum": 9},
        {"type": "boolean"},
        {"enum": ["red", "green", "blue"]},
        {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "maxItems": 3},
    ]
    found = []
    for n in range(20):
        properties = {f"field_{n}_{k}": kinds[(n + k) % len(kinds)] for k in range(1 + n % 3)}
        if n % 4 == 3:
            properties["nested"] = {"type": "object", "properties": {"shape": kinds[3]}, "required": ["shape"]}
        found.append({"type": "object", "properties": properties, "required": sorted(properties)})
    return found


def test_json_schema_answers_validate_for_20_schemas_sent_at_once(async_sdk: openai.AsyncOpenAI) -> None:
    in_flight = asyncio.Semaphore(16)  # the gateway's limit per API key

    async def ask(schema: dict) -> str:
        async with in_flight:
            reply = await async_sdk.chat.completions.create(
                model="llava",
                messages=PROMPT,
                max_tokens=120,
                response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
            )
        assert reply.choices[0].finish_reason == "stop", reply.choices[0].message.content
        return reply.choices[0].message.content or ""

    async def ask_all() -> list[str]:
        return await asyncio.gather(*(ask(schema) for schema in schemas()))

    for schema, content in zip(schemas(), asyncio.run(ask_all()), strict=True):
        jsonschema.validate(json.loads(content), schema)


def test_json_object_answers_that_end_parse_as_objects(sdk: openai.OpenAI) -> None:
    """Any JSON object: random weights may write one string until max_tokens (a cut answer cannot parse, as with
    OpenAI's), so the test asks several questions and needs the ones that end to parse, and some to end."""
    questions = ["a red square above a blue circle", "how many shapes are there?", "hi", "name a colour.", "what?"]
    ended = 0
    for question in questions:
        reply = sdk.chat.completions.create(
            model="llava",
            messages=[{"role": "user", "content": question}],
            max_tokens=200,
            response_format={"type": "json_object"},
        )
        content = reply.choices[0].message.content or ""
        assert content.startswith("{")
        if reply.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(content), dict)
            ended += 1
    assert ended >= 1


def test_a_malformed_schema_is_a_400_naming_the_field(sdk: openai.OpenAI) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objec"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="llava", messages=PROMPT, max_tokens=8, response_format=bad)
    assert "response_format.json_schema.schema" in str(caught.value)
    assert sdk.chat.completions.create(model="llava", messages=PROMPT, max_tokens=2).choices


def test_greedy_top_logprobs_equal_hugging_faces_log_softmax(
    sdk: openai.OpenAI, llava_reference: LlavaReference
) -> None:
    reply = sdk.chat.completions.create(model="llava", messages=PROMPT, max_tokens=12, logprobs=True, top_logprobs=5)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    prompt_ids = llava_reference.inputs(PROMPT, [])["input_ids"]
    completion = llava_reference.greedy(PROMPT, [], 12)
    sequence = torch.cat([prompt_ids, torch.tensor([completion])], dim=1)
    with torch.inference_mode():
        logits = llava_reference.model(input_ids=sequence).logits[0, prompt_ids.shape[1] - 1 : -1]
    expected = logits.float().log_softmax(-1).topk(5)
    for step, token in enumerate(content):
        assert len(token.top_logprobs) == 5
        served = [alternative.logprob for alternative in token.top_logprobs]
        assert served == pytest.approx(expected.values[step].tolist(), abs=1e-3)
        assert token.logprob == pytest.approx(expected.values[step][0].item(), abs=1e-3)  # greedy: the likeliest


def test_a_presence_penalty_changes_a_repetitive_greedy_answer_and_zero_leaves_it(sdk: openai.OpenAI) -> None:
    def answer(**options: float) -> str:
        reply = sdk.chat.completions.create(model="llava", messages=PROMPT, max_tokens=40, **options)
        return reply.choices[0].message.content or ""

    plain = answer()
    words = plain.split()
    assert len(words) > len(set(words)), f"pick a prompt whose greedy answer repeats itself: {plain!r}"
    assert answer(presence_penalty=0.0) == plain
    assert answer(presence_penalty=2.0) != plain
    assert answer(frequency_penalty=2.0) != plain


def test_ignore_eos_and_min_tokens_fix_the_length_as_benchmark_clients_ask(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="llava", messages=PROMPT, max_tokens=30, extra_body={"ignore_eos": True, "min_tokens": 30}
    )
    assert reply.usage.completion_tokens == 30 and reply.choices[0].finish_reason == "length"


@pytest.fixture
def async_sdk(sdk: openai.OpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(sdk.base_url), api_key=sdk.api_key, timeout=TIMEOUT_S, max_retries=0)
