"""The task prompts and reading a structured answer back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from client import InvalidInputError, prompts


@pytest.mark.parametrize(
    ("answer", "parsed"),
    [
        ('{"title": "Q3 report", "total": 1200}', {"title": "Q3 report", "total": 1200}),
        ('Here it is:\n```json\n{"items": [1, 2]}\n```', {"items": [1, 2]}),
        ('  {"a": null}\n', {"a": None}),
    ],
)
def test_a_json_answer_is_parsed(answer: str, parsed: dict) -> None:
    assert prompts.parse_structured(answer) == parsed


@pytest.mark.parametrize("answer", ["a red circle above a square", '{"unclosed": 1', "[1, 2, 3]", ""])
def test_an_answer_that_is_not_a_json_object_comes_back_raw(answer: str) -> None:
    assert prompts.parse_structured(answer) == {"raw_response": answer, "structured": False}


def test_caption_temperatures_rise_evenly_from_low_to_high() -> None:
    low, high = prompts.CAPTION_TEMPERATURES
    assert prompts.caption_temperatures(3) == pytest.approx([low, (low + high) / 2, high])
    assert prompts.caption_temperatures(1) == [low]


def test_every_style_and_kind_is_its_own_instruction_after_one_image() -> None:
    instructions = [prompts.caption(s)[0]["content"] for s in prompts.CAPTION_STYLES]
    instructions += [prompts.document(k)[0]["content"] for k in prompts.DOCUMENT_KINDS]
    assert all(content[0] == {"type": "image"} for content in instructions)
    assert len({content[1]["text"] for content in instructions}) == len(instructions)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: prompts.caption("funny"), "style: 'funny' is not one of"),
        (lambda: prompts.document("poems"), "kind: 'poems' is not one of"),
        (lambda: prompts.document("summary", "and a query"), "either a document kind or a query"),
        (lambda: prompts.question("  "), "question: must not be empty"),
        (lambda: prompts.caption_temperatures(0), "n: must be at least 1"),
    ],
)
def test_bad_task_arguments_are_invalid_input_naming_the_field(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()
