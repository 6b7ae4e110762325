"""LLaVA-NeXT checkpoints (LLaVA-1.5's towers and projector, anyres tiling, the newline vector) in the ``llava-hf``
layout (``llava-hf/llava-v1.6-*-hf``), made locally from a seed like the LLaVA presets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaTokenizer, LlavaNextConfig, LlavaNextProcessor, PreTrainedTokenizerBase
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

from checkpoints.llava_preset import LlavaPreset
from checkpoints.tower_shape import TowerShape

# llava-v1.6's grids at 336-pixel tiles: 1x2, 2x1, 2x2, 1x3, 3x1 (with the base image, up to 5 tiles an image).
LLAVA_V1_6_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))


@dataclass(frozen=True, kw_only=True)
class LlavaNextPreset(LlavaPreset):
    image_grid_pinpoints: tuple[tuple[int, int], ...]  # (height, width), each a whole number of image_size tiles

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(h % self.image_size or w % self.image_size for h, w in self.image_grid_pinpoints):
            raise ValueError(f"{self.name}: every grid pinpoint must be a whole number of {self.image_size}px tiles")
        if self.vision_feature_select_strategy != "default":
            raise ValueError(f"{self.name}: LLaVA-NeXT packs a tile's patches without CLS ('default' strategy)")

    def config(self, tokenizer: PreTrainedTokenizerBase | None = None) -> LlavaNextConfig:  # type: ignore[override]
        pinpoints = [list(p) for p in self.image_grid_pinpoints]
        return LlavaNextConfig(**self.config_fields(tokenizer), image_grid_pinpoints=pinpoints)

    def processor(self, tokenizer: LlamaTokenizer) -> LlavaNextProcessor:  # type: ignore[override]
        pinpoints = [list(p) for p in self.image_grid_pinpoints]
        image_processor = LlavaNextImageProcessorPil(**self.image_processor_fields(), image_grid_pinpoints=pinpoints)
        return LlavaNextProcessor(image_processor, **self.processor_fields(tokenizer))


# Tests: 32-pixel tiles of 4x4 patches (16 tokens each) and three grids, so small images of different aspect ratios
# pick different ones; a language model with two query heads of 32 (vLLM CPU's smallest head size) sharing one
# key/value head.
TINY_LLAVA_NEXT = LlavaNextPreset(
    name="tiny-llava-next",
    image_size=32,
    patch_size=8,
    image_grid_pinpoints=((32, 64), (64, 32), (64, 64)),
    vision=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
    text=TowerShape(hidden=64, layers=2, heads=2, intermediate=128, kv_heads=1),
    context_length=2048,
    tokenizer_vocab_size=1000,
    seed=2,
)
# llava-v1.6-vicuna-7b's shapes with random weights, for the benchmark: CLIP ViT-L/14-336 (576 tokens a tile, up to
# 2,928 an image), Vicuna 7B (Llama 2 7B).
LLAVA_V1_6_VICUNA_7B = LlavaNextPreset(
    name="llava-v1.6-vicuna-7b",
    image_size=336,
    patch_size=14,
    image_grid_pinpoints=LLAVA_V1_6_PINPOINTS,
    vision=TowerShape(hidden=1024, layers=24, heads=16, intermediate=4096),
    text=TowerShape(hidden=4096, layers=32, heads=32, intermediate=11008, kv_heads=32),
    context_length=4096,
    tokenizer_vocab_size=1000,
    vocab_size=32064,
    dtype=torch.float16,
)
# The benchmark's LLaVA-NeXT: bench-llava's language model behind a ViT-B/32 tower (49 tokens a 224-pixel tile) and
# llava-v1.6's grid shapes at 224-pixel tiles, so a landscape image costs 3 tiles (about 150 tokens with the newlines)
# and a run on 2 CPU cores stays short; real-size layers, random weights.
BENCH_LLAVA_NEXT = LlavaNextPreset(
    name="bench-llava-next",
    image_size=224,
    patch_size=32,
    image_grid_pinpoints=((224, 448), (448, 224), (448, 448)),
    vision=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),
    text=TowerShape(hidden=768, layers=8, heads=12, intermediate=2048, kv_heads=12),
    context_length=1024,
    tokenizer_vocab_size=1000,
)
LLAVA_NEXT_PRESETS = (TINY_LLAVA_NEXT, LLAVA_V1_6_VICUNA_7B, BENCH_LLAVA_NEXT)
