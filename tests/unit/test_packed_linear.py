"""Prepacked linears (oneDNN-reordered weights) compute what ``nn.Linear`` computes, and a prepacked language
model generates the same greedy tokens as the plain one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

from serving.generation.checkpoint import LANGUAGE_MODEL_KEYS, load_language_model
from serving.generation.packed_linear import PrepackedLinear, can_prepack, prepack_linear_layers

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this PyTorch has no oneDNN")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (8, 48), (90, 48), (3, 7, 48)])
def test_a_prepacked_linear_equals_the_linear_for_any_row_count_and_rank(shape: tuple[int, ...], bias: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(48, 80, bias=bias)
    inputs = torch.randn(*shape)
    with torch.inference_mode():
        expected = linear(inputs)
        packed = PrepackedLinear(linear)(inputs)
    assert packed.shape == expected.shape
    torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)


def test_every_linear_is_replaced_but_a_head_tied_to_the_embeddings() -> None:
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    untied = AutoModelForCausalLM.from_config(config).eval()
    assert prepack_linear_layers(untied) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer; the head
    assert not any(type(m) is torch.nn.Linear for m in untied.modules())
    config.tie_word_embeddings = True
    tied = AutoModelForCausalLM.from_config(config).eval()
    assert tied.lm_head.weight.data_ptr() == tied.get_input_embeddings().weight.data_ptr()
    assert prepack_linear_layers(tied) == 2 * 7
    assert type(tied.lm_head) is torch.nn.Linear
    assert tied.lm_head.weight.data_ptr() == tied.get_input_embeddings().weight.data_ptr()  # still tied after copies


def test_only_a_float32_model_on_cpu_is_prepacked() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert can_prepack(model)
    assert not can_prepack(model.to(torch.bfloat16))


def test_the_served_language_model_is_prepacked_and_generates_the_plain_models_greedy_tokens(
    tiny_llava: Path,
) -> None:
    served = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    assert any(isinstance(m, PrepackedLinear) for m in served.modules())
    plain = AutoModelForCausalLM.from_pretrained(
        tiny_llava, config=AutoConfig.from_pretrained(tiny_llava).text_config, key_mapping=LANGUAGE_MODEL_KEYS
    ).eval()
    prompts = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29], [1, 30, 3, 8, 2, 44, 6, 7]])
    with torch.inference_mode():
        logits = served(input_ids=prompts).logits
        torch.testing.assert_close(logits, plain(input_ids=prompts).logits, rtol=1e-4, atol=1e-4)
        tokens = served.generate(prompts, max_new_tokens=24, do_sample=False)
        assert torch.equal(tokens, plain.generate(prompts, max_new_tokens=24, do_sample=False))
