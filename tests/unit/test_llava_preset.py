"""LLaVA presets: tiny-llava loads, prompts and generates with the standard classes and is reproducible from its
seed; llava-1.5-7b has the published shapes (checked on the meta device, never built here)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

from export.cli import main as vlm_export
from export.llava_preset import LLAVA_1_5_7B, TINY_LLAVA
from export.presets import build_preset
from export.tower_shape import TowerShape

PROMPT = "USER: <image>\nWhat is shown? ASSISTANT:"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def model(tiny_llava: Path) -> LlavaForConditionalGeneration:
    return LlavaForConditionalGeneration.from_pretrained(tiny_llava).eval()


@pytest.fixture(scope="module")
def processor(tiny_llava: Path) -> Any:
    return AutoProcessor.from_pretrained(tiny_llava)


def test_tiny_llava_loads_with_llava_classes_and_autoprocessor(
    model: LlavaForConditionalGeneration, processor: Any
) -> None:
    tokenizer = processor.tokenizer
    assert type(processor).__name__ == "LlavaProcessor"
    assert (len(tokenizer), model.config.text_config.vocab_size) == (1002, 1024)
    assert tokenizer.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<0x00>"]) == [0, 1, 2, 3]
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>") == 1000
    assert model.config.text_config.pad_token_id == tokenizer.pad_token_id == 1001
    assert tokenizer.model_max_length == model.config.text_config.max_position_embeddings == 512
    assert tokenizer.padding_side == "left"
    assert model.dtype == torch.float32


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}],
            "USER: <image>\nWhat is shown? ASSISTANT:",
        ),
        (
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
                {"role": "user", "content": [{"type": "text", "text": "And?"}]},
            ],
            "USER: <image>\nWhat? ASSISTANT: A cat.</s>USER: And? ASSISTANT:",
        ),
        (
            [
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ],
            "Be brief. USER: Hi ASSISTANT:",
        ),
        (
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "And?"},
            ],
            "USER: <image>\nWhat? ASSISTANT: A cat.</s>USER: And? ASSISTANT:",
        ),
    ],
)
def test_the_chat_template_renders_llava_1_5_prompts_from_processor_and_tokenizer(
    tiny_llava: Path, processor: Any, messages: list[dict[str, Any]], expected: str
) -> None:
    assert processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == expected
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava)
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == expected


def test_the_processor_expands_one_image_token_into_16_and_the_model_runs(
    model: LlavaForConditionalGeneration, processor: Any
) -> None:
    inputs = processor(images=Image.new("RGB", (80, 50), "red"), text=PROMPT, return_tensors="pt")
    ids = inputs["input_ids"][0]
    assert inputs["pixel_values"].shape == (1, 3, 64, 64)
    assert ids[0] == processor.tokenizer.bos_token_id
    assert int((ids == model.config.image_token_id).sum()) == 16 == model.config.image_seq_length
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, len(ids), 1024)
    assert torch.isfinite(logits).all()


def test_greedy_generation_runs_with_the_saved_generation_config(
    model: LlavaForConditionalGeneration, processor: Any
) -> None:
    generation = model.generation_config
    assert not generation.do_sample and generation.repetition_penalty in (None, 1.0)
    assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == (1, 2, 1001)
    inputs = processor(images=Image.new("RGB", (64, 64), "blue"), text=PROMPT, return_tensors="pt")
    prompt = inputs["input_ids"]
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert torch.equal(output[:, : prompt.shape[1]], prompt)
    assert 0 < output.shape[1] - prompt.shape[1] <= 5


@pytest.mark.parametrize(
    "text", ["naïve café", "日本語のテキスト", "emoji 🙂🚀 mixed", "Ελληνικά и русский", "tab\tand\nnewline"]
)
def test_the_tokenizer_round_trips_any_utf8_without_unknown_tokens(processor: Any, text: str) -> None:
    tokenizer = processor.tokenizer
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_building_tiny_llava_twice_gives_identical_files(tiny_llava: Path, tmp_path: Path) -> None:
    again = build_preset("tiny-llava", tmp_path / "again")
    assert _digest(again) == _digest(tiny_llava)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(_digest(again))


def test_vlm_export_checkpoint_writes_tiny_llava(tiny_llava: Path, tmp_path: Path) -> None:
    assert vlm_export(["checkpoint", "--preset", "tiny-llava", "--out", str(tmp_path / "cli")]) == 0
    assert _digest(tmp_path / "cli") == _digest(tiny_llava)


def test_llava_1_5_7b_config_has_the_published_shapes() -> None:
    config = LLAVA_1_5_7B.config()
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1024, 24, 16)
    assert (vision.intermediate_size, vision.image_size, vision.patch_size) == (4096, 336, 14)
    assert (text.hidden_size, text.num_hidden_layers) == (4096, 32)
    assert (text.num_attention_heads, text.num_key_value_heads) == (32, 32)
    assert (text.intermediate_size, text.max_position_embeddings, text.vocab_size) == (11008, 4096, 32064)
    assert text.rms_norm_eps == 1e-5
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-2, "default")
    assert (config.projector_hidden_act, config.image_seq_length) == ("gelu", 576)
    assert config.image_token_id < text.vocab_size


def test_llava_1_5_7b_has_7_06_billion_float16_parameters_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = LLAVA_1_5_7B.model(LLAVA_1_5_7B.config())
    assert model.dtype == torch.float16
    assert sum(p.numel() for p in model.parameters()) == 7_063_427_072  # llava-hf/llava-1.5-7b-hf's count


@pytest.mark.parametrize(
    "shape",
    [
        {"hidden": 30, "layers": 1, "heads": 4, "intermediate": 8},
        {"hidden": 32, "layers": 1, "heads": 4, "intermediate": 8, "kv_heads": 3},
    ],
)
def test_a_tower_whose_heads_do_not_divide_evenly_is_refused(shape: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="divisible"):
        TowerShape(**shape)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": 60}, "multiple of the patch size"),
        ({"vocab_size": 1000}, "must fit the model's vocabulary"),
    ],
)
def test_a_preset_with_inconsistent_sizes_is_refused(change: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(TINY_LLAVA, **change)
