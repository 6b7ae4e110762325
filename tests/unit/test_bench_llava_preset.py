"""bench-llava: a small vision tower and a language model big enough (>= 50M parameters) that decoding costs real
compute; counted on the meta device, never built here."""

from __future__ import annotations

import torch

from export.llava_preset import BENCH_LLAVA, TINY_LLAVA


def test_bench_llava_language_model_has_58_million_parameters_on_the_meta_device() -> None:
    with torch.device("meta"):
        model = BENCH_LLAVA.model(BENCH_LLAVA.config())
    language = sum(p.numel() for p in model.model.language_model.parameters()) + model.lm_head.weight.numel()
    vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    assert language >= 50_000_000
    assert language == 58_209_024
    assert vision < 5_000_000
    assert model.config.image_seq_length == 49  # 224 px in 32 px patches, CLS dropped


def test_bench_llava_shares_tiny_llava_tokenizer_settings() -> None:
    assert BENCH_LLAVA.tokenizer_vocab_size == TINY_LLAVA.tokenizer_vocab_size
    assert BENCH_LLAVA.vocab_size == TINY_LLAVA.vocab_size
