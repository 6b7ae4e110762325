"""serving.generation.checkpoint: what the decoder reads from a LLaVA checkpoint (image tokens per image under each
feature strategy, sizes, the image token) and its refusal of a checkpoint whose weights its key mapping missed."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import LlavaConfig

from serving.generation.checkpoint import image_tokens_per_image, read_checkpoint, require_all_weights


def _config(strategy: str, image_size: int = 336, patch_size: int = 14) -> LlavaConfig:
    vision = {"model_type": "clip_vision_model", "image_size": image_size, "patch_size": patch_size}
    return LlavaConfig(vision_config=vision, vision_feature_select_strategy=strategy)


@pytest.mark.parametrize(
    ("strategy", "image_size", "patch_size", "tokens"),
    [("default", 336, 14, 576), ("full", 336, 14, 577), ("default", 64, 16, 16), ("full", 56, 14, 17)],
)
def test_an_image_is_one_token_a_patch_plus_cls_when_the_strategy_keeps_it(
    strategy: str, image_size: int, patch_size: int, tokens: int
) -> None:
    assert image_tokens_per_image(_config(strategy, image_size, patch_size)) == tokens


def test_tiny_llava_full_is_read_with_17_image_tokens_and_its_language_model_sizes(tiny_llava_full: Path) -> None:
    checkpoint = read_checkpoint(tiny_llava_full)
    assert checkpoint.image_tokens_per_image == 17
    assert (checkpoint.text_hidden, checkpoint.context_length, checkpoint.vocab_size) == (128, 512, 1002)
    assert checkpoint.image_token_id == 1000


def test_tiny_llava_is_read_with_16_image_tokens(tiny_llava: Path) -> None:
    checkpoint = read_checkpoint(tiny_llava)
    assert (checkpoint.image_tokens_per_image, checkpoint.text_hidden, checkpoint.context_length) == (16, 64, 2048)


def test_missing_weights_are_refused_by_name() -> None:
    require_all_weights({"missing_keys": []}, "vision tower")
    with pytest.raises(ValueError, match=r"vision tower weights were not found \(first missing: a\.weight\)"):
        require_all_weights({"missing_keys": ["b.bias", "a.weight"]}, "vision tower")
