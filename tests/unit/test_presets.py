"""Preset checkpoints load with the standard Hugging Face classes and are reproducible from their seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from transformers import AutoProcessor, CLIPConfig, CLIPModel

from checkpoints.cli import main as vlm_checkpoint
from checkpoints.presets import PRESETS, build_preset


def test_tiny_clip_loads_with_clipmodel_and_autoprocessor(tiny_clip: Path) -> None:
    model = CLIPModel.from_pretrained(tiny_clip)
    processor = AutoProcessor.from_pretrained(tiny_clip)
    assert type(processor).__name__ == "CLIPProcessor"
    assert processor.tokenizer.model_max_length == model.config.text_config.max_position_embeddings == 77
    assert model.config.text_config.eos_token_id == processor.tokenizer.eos_token_id


def test_the_tokenizer_truncates_to_77_tokens_keeping_end_of_text(tiny_clip: Path) -> None:
    tokenizer = AutoProcessor.from_pretrained(tiny_clip).tokenizer
    ids = tokenizer("a red circle " * 100, truncation=True)["input_ids"]
    assert len(ids) == 77
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_the_tokenizer_reads_any_utf8_without_unknown_tokens(tiny_clip: Path) -> None:
    tokenizer = AutoProcessor.from_pretrained(tiny_clip).tokenizer
    ids = tokenizer("naïve 日本語 🙂")["input_ids"][1:-1]
    assert ids and tokenizer.unk_token_id not in ids


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_building_a_preset_twice_gives_identical_files(tiny_clip: Path, tmp_path: Path) -> None:
    again = build_preset("tiny-clip", tmp_path / "again")
    assert _digest(again) == _digest(tiny_clip)


def test_tiny_siglip_is_deterministic_and_loads_as_a_siglip_checkpoint(tmp_path: Path) -> None:
    first = build_preset("tiny-siglip", tmp_path / "first")
    assert _digest(build_preset("tiny-siglip", tmp_path / "second")) == _digest(first)
    processor = AutoProcessor.from_pretrained(first)
    assert type(processor).__name__ == "SiglipProcessor"
    ids = processor.tokenizer(["naïve 日本語 🙂"], padding="max_length")["input_ids"][0]
    assert len(ids) == processor.tokenizer.model_max_length and ids[-1] == processor.tokenizer.pad_token_id
    assert json.loads((first / "config.json").read_text())["architectures"] == ["SiglipModel"]


def test_tiny_siglip2_is_deterministic_and_loads_as_a_naflex_siglip2_checkpoint(tmp_path: Path) -> None:
    first = build_preset("tiny-siglip2", tmp_path / "first")
    assert _digest(build_preset("tiny-siglip2", tmp_path / "second")) == _digest(first)
    processor = AutoProcessor.from_pretrained(first, backend="pil")
    assert type(processor).__name__ == "Siglip2Processor"
    assert (processor.image_processor.patch_size, processor.image_processor.max_num_patches) == (16, 64)
    config = json.loads((first / "config.json").read_text())
    assert config["architectures"] == ["Siglip2Model"] and config["vision_config"]["num_patches"] == 16


def test_the_siglip2_so400m_preset_has_the_published_shape() -> None:
    preset = PRESETS["siglip2-so400m-patch16-naflex"]
    vision = preset.vision_config()
    assert (vision["hidden_size"], vision["num_hidden_layers"], vision["intermediate_size"]) == (1152, 27, 4304)
    assert (vision["patch_size"], vision["num_patches"], preset.max_num_patches) == (16, 256, 256)
    assert (preset.text.hidden, preset.context_length, preset.vocab_size) == (1152, 64, 256_000)


@pytest.mark.parametrize(
    ("name", "image_size", "patch_size", "projection"),
    [("clip-vit-base-patch32", 224, 32, 512), ("clip-vit-large-patch14-336", 336, 14, 768)],
)
def test_real_size_presets_have_the_published_shapes(
    name: str, image_size: int, patch_size: int, projection: int
) -> None:
    preset = PRESETS[name]
    assert (preset.image_size, preset.patch_size, preset.projection_dim) == (image_size, patch_size, projection)
    assert preset.vocab_size == CLIPConfig().text_config.vocab_size == 49408


def test_the_registry_holds_every_family_s_presets_and_the_trained_ones_by_name() -> None:
    assert list(PRESETS) == [
        "tiny-clip",
        "clip-vit-base-patch32",
        "clip-vit-large-patch14-336",
        "tiny-llava",
        "tiny-llava-full",
        "llava-1.5-7b",
        "bench-llava",
        "tiny-llava-next",
        "llava-v1.6-vicuna-7b",
        "bench-llava-next",
        "tiny-siglip",
        "siglip-base-patch16-224",
        "tiny-siglip2",
        "siglip2-so400m-patch16-naflex",
        "tiny-idefics3",
        "tiny-qwen2-vl",
        "tiny-qwen2.5-vl",
        "qwen2-vl-2b",
        "qwen2.5-vl-7b",
        "qwen2.5-vl-7b-tower",
        "bench-qwen2-vl",
        "shapes-clip",
        "shapes-llava",
    ]
    assert all(preset.name == name for name, preset in PRESETS.items())


def test_an_unknown_preset_is_refused_with_the_list_of_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert vlm_checkpoint(["make", "--preset", "no-such-model", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "tiny-clip" in err and "tiny-llava" in err


def test_build_preset_refuses_an_unknown_name() -> None:
    with pytest.raises(KeyError, match="tiny-llava"):
        build_preset("no-such-model", Path("unused"))


def test_tiny_idefics3_loads_as_an_idefics3_checkpoint_whose_image_tokens_are_single_tokens(
    tiny_idefics3: Path,
) -> None:
    from transformers import Idefics3ForConditionalGeneration

    from checkpoints.idefics3_preset import IMAGE_TOKENS

    model = Idefics3ForConditionalGeneration.from_pretrained(tiny_idefics3)
    tokenizer = AutoProcessor.from_pretrained(tiny_idefics3).tokenizer
    assert model.config.text_config.vocab_size == len(tokenizer)  # every output row is a token
    assert model.config.text_config.head_dim == 32  # vLLM CPU's smallest attention kernel
    for token in (*IMAGE_TOKENS, "\n"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token


def test_tiny_qwen2_vl_loads_as_a_qwen2_vl_checkpoint_in_the_original_layout(tiny_qwen2_vl: Path) -> None:
    """The weights under Qwen/Qwen2-VL-*'s names (``visual.``, ``model.``, ``lm_head``), which vLLM loads."""
    from safetensors import safe_open
    from transformers import Qwen2VLForConditionalGeneration

    from checkpoints.qwen2_vl_preset import SPECIAL_TOKENS

    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_qwen2_vl)
    tokenizer = AutoProcessor.from_pretrained(tiny_qwen2_vl).tokenizer
    assert model.config.text_config.vocab_size == len(tokenizer)  # every output row is a token
    assert model.config.text_config.hidden_size // model.config.text_config.num_attention_heads == 32  # vLLM CPU
    for token in (*SPECIAL_TOKENS, "\n"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    with safe_open(str(tiny_qwen2_vl / "model.safetensors"), framework="np") as weights:
        prefixes = {key.split(".")[0] for key in weights.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    assert prefixes == {"visual", "model", "lm_head"}


def test_tiny_qwen2_vl_images_cost_their_resized_grid_in_tokens(tiny_qwen2_vl: Path) -> None:
    """smart_resize to multiples of 28 within [56 x 56, 64 merged tokens], then one token per 28 x 28 pixels."""
    processor = AutoProcessor.from_pretrained(tiny_qwen2_vl)
    sizes = [(80, 96), (40, 150), (300, 300), (20, 20)]  # (height, width)
    counts = processor._get_num_multimodal_tokens(image_sizes=[list(size) for size in sizes]).num_image_tokens
    assert list(counts) == [3 * 3, 1 * 5, 7 * 7, 2 * 2]  # 300 x 300 rounds down to 196 x 196


def test_tiny_qwen2_5_vl_has_window_attention_and_qwens_layout(tiny_qwen2_5_vl: Path) -> None:
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen2_5_vl)
    vision = model.config.vision_config
    assert (vision.window_size, list(vision.fullatt_block_indexes), vision.depth) == (112, [1, 3], 4)
    assert vision.out_hidden_size == model.config.text_config.hidden_size
    with safe_open(str(tiny_qwen2_5_vl / "model.safetensors"), framework="np") as weights:
        prefixes = {key.split(".")[0] for key in weights.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    assert prefixes == {"visual", "model", "lm_head"}


@pytest.mark.parametrize(
    ("name", "vision", "text", "vocab"),
    [
        (
            "qwen2-vl-2b",
            {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "hidden_size": 1536},
            (1536, 28, 12, 2),
            151936,
        ),
        (
            "qwen2.5-vl-7b",
            {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "fullatt_block_indexes": [7, 15, 23, 31]},
            (3584, 28, 28, 4),
            152064,
        ),
    ],
)
def test_the_real_size_qwen_presets_have_the_published_shapes(
    name: str, vision: dict[str, object], text: tuple[int, int, int, int], vocab: int
) -> None:
    preset = PRESETS[name]
    config = preset.vision_config()
    assert {key: config[key] for key in vision} == vision
    assert (preset.text.hidden, preset.text.layers, preset.text.heads, preset.text.kv_heads) == text
    assert preset.vocab_size == vocab and preset.max_pixels == 28 * 28 * 16384


def test_the_tower_preset_keeps_qwen2_5_vl_7bs_tower_before_a_one_layer_language_model() -> None:
    full, tower = PRESETS["qwen2.5-vl-7b"], PRESETS["qwen2.5-vl-7b-tower"]
    assert tower.vision_config() == full.vision_config()  # the merger's output too: the 7B's width
    assert (tower.text.hidden, tower.text.layers, tower.vocab_size) == (full.text.hidden, 1, None)
