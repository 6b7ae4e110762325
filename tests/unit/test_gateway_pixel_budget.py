"""The gateway's pixel budget: top-level min_pixels / max_pixels or vLLM's mm_processor_kwargs, refused for a model
whose chat ensemble declares no such input, each error naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from client.catalog import ServedModel, from_configs
from gateway.conversation import check_model_inputs, conversation, generation_parameters, pixel_budget, triton_fields
from gateway.errors import ApiError
from gateway.schemas.chat import ChatCompletionRequest

pytestmark = pytest.mark.timeout(30)

MESSAGES = [{"role": "user", "content": "hi"}]
QWEN = ServedModel(
    "qwen2_vl", "qwen2_vl", "chat", (("chat", "qwen2_vl"),), inputs=("image", "min_pixels", "max_pixels")
)
LLAVA = ServedModel("llava", "llava", "chat", (("chat", "llava"),), inputs=("image", "video"))


def request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": MESSAGES, **fields})


def test_vllms_mm_processor_kwargs_and_the_top_level_fields_give_the_same_parameters() -> None:
    nested = request(mm_processor_kwargs={"min_pixels": 784, "max_pixels": 6272})
    top = request(min_pixels=784, max_pixels=6272)
    for body in (nested, top):
        parameters = generation_parameters(body, max_choices=1)
        assert (parameters["min_pixels"], parameters["max_pixels"]) == (784, 6272)
    assert pixel_budget(nested)["max_pixels"] == (6272, "mm_processor_kwargs.max_pixels")
    assert pixel_budget(top)["max_pixels"] == (6272, "max_pixels")


def test_the_two_places_may_repeat_a_value_but_not_contradict_it() -> None:
    assert pixel_budget(request(max_pixels=6272, mm_processor_kwargs={"max_pixels": 6272}))["max_pixels"][0] == 6272
    with pytest.raises(ApiError) as caught:
        generation_parameters(request(max_pixels=6272, mm_processor_kwargs={"max_pixels": 5000}), max_choices=1)
    assert caught.value.status == 400 and caught.value.param == "mm_processor_kwargs.max_pixels"


def test_a_model_without_a_pixel_budget_refuses_it_naming_the_parameter() -> None:
    check_model_inputs(request(max_pixels=6272), QWEN)
    check_model_inputs(request(), LLAVA)
    with pytest.raises(ApiError) as caught:
        check_model_inputs(request(mm_processor_kwargs={"min_pixels": 784}), LLAVA)
    assert caught.value.status == 400 and caught.value.param == "mm_processor_kwargs.min_pixels"
    assert "the model 'llava' takes no pixel budget" in str(caught.value.message)


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"max_pixels": 3136.5}, ("max_pixels",)),
        ({"min_pixels": 0}, ("min_pixels",)),
        ({"mm_processor_kwargs": {"max_pixels": "many"}}, ("mm_processor_kwargs", "max_pixels")),
        ({"mm_processor_kwargs": {"fps": 2}}, ("mm_processor_kwargs", "fps")),  # refused, not ignored
    ],
)
def test_the_schema_refuses_non_integers_non_positive_values_and_other_processor_kwargs(
    fields: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        request(**fields)
    assert caught.value.errors()[0]["loc"] == location


def test_a_servers_rejection_of_a_budget_names_the_parameter_the_request_used() -> None:
    body = request(mm_processor_kwargs={"max_pixels": 100})
    names = triton_fields(body, conversation(body, 4))
    assert names("max_pixels", None) == "mm_processor_kwargs.max_pixels"
    assert names("min_pixels", None) == "min_pixels"


def test_the_catalog_reads_the_chat_ensembles_declared_inputs() -> None:
    tags = {"vlm_model": "qwen2_vl", "vlm_family": "qwen2_vl", "vlm_task": "chat"}
    config = {
        "parameters": {key: {"string_value": value} for key, value in tags.items()},
        "input": [{"name": "image"}, {"name": "max_pixels"}],
    }
    assert from_configs({"qwen2_vl": config})["qwen2_vl"].inputs == ("image", "max_pixels")
