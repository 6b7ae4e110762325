"""bench-llava: a real model's vision tower (CLIP ViT-B/16 at 224 px) and a language model big enough (>= 50M
parameters) that decoding costs real compute; counted on the meta device, never built here."""

from __future__ import annotations

import torch

from checkpoints.llava_preset import BENCH_LLAVA, TINY_LLAVA


def test_bench_llava_has_a_58_million_parameter_language_model_and_a_vit_b_16_tower_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = BENCH_LLAVA.model(BENCH_LLAVA.config())
    language = sum(p.numel() for p in model.model.language_model.parameters()) + model.lm_head.weight.numel()
    vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    assert language >= 50_000_000
    assert language == 58_175_232  # embeddings and lm_head of 1002 rows, one per token
    assert vision == 85_799_424  # openai/clip-vit-base-patch16's vision model, without its projection
    assert model.config.image_seq_length == 196  # 224 px in 16 px patches, CLS dropped


def test_bench_llava_vision_tower_has_vit_b_16_shapes() -> None:
    vision = BENCH_LLAVA.config().vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (768, 12, 12)
    assert (vision.intermediate_size, vision.image_size, vision.patch_size) == (3072, 224, 16)


def test_bench_llava_shares_tiny_llava_tokenizer_settings() -> None:
    assert BENCH_LLAVA.tokenizer_vocab_size == TINY_LLAVA.tokenizer_vocab_size
    assert BENCH_LLAVA.vocab_size == TINY_LLAVA.vocab_size
