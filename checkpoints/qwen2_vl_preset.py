"""Qwen2-VL checkpoints (a ViT on 14-pixel patches with 2D rotary positions, a 2x2 patch merger, a Qwen2 decoder
with three-axis M-RoPE) in the layout of ``Qwen/Qwen2-VL-2B-Instruct``, made locally from a seed like the other
presets: model, ``Qwen2VLProcessor`` (tokenizer with Qwen's chat and vision tokens, the image processor that resizes
each image to multiples of 28 within its pixel budget, the video processor, the chat template) and generation config,
loadable with ``Qwen2VLForConditionalGeneration`` and ``AutoProcessor``, and by vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
from transformers import (
    GenerationConfig,
    LlamaTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from checkpoints.llava_preset import VLLM_CPU_HEAD_SIZES
from checkpoints.tokenizer_training import train_llama_tokenizer
from checkpoints.tower_shape import TowerShape

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
END_OF_TURN = "<|im_end|>"
SPECIAL_TOKENS = ("<|im_start|>", END_OF_TURN, "<|vision_start|>", "<|vision_end|>", IMAGE_TOKEN, VIDEO_TOKEN)
# Qwen/Qwen2-VL-*-Instruct's template: a default system turn, each image as <|vision_start|><|image_pad|><|vision_end|>
# (the processor, and vLLM, expand the pad into the image's tokens).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PATCH_SIZE = 14  # Qwen2-VL's (and 2.5's): a merged token covers 28 x 28 pixels
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2


@dataclass(frozen=True)
class Qwen2VLPreset:
    name: str
    vision: TowerShape  # the ViT's embed_dim, depth, heads; intermediate = embed_dim * mlp_ratio
    text: TowerShape
    mrope_section: tuple[int, int, int]  # the rotary half-dimensions given to time, height and width
    min_pixels: int
    max_pixels: int
    context_length: int
    tokenizer_vocab_size: int
    seed: int = 0
    vocab_size: int | None = None  # the language model's rows; None: the tokenizer's tokens (real sizes: Qwen's)

    def __post_init__(self) -> None:
        if self.text.head_size not in VLLM_CPU_HEAD_SIZES:
            raise ValueError(
                f"{self.name}: the language model's head size {self.text.head_size} has no vLLM CPU kernel"
            )
        if 2 * sum(self.mrope_section) != self.text.head_size:
            raise ValueError(f"{self.name}: mrope_section must add up to half the head size {self.text.head_size}")
        if self.vision_mlp_ratio and self.vision.intermediate % self.vision.hidden:
            raise ValueError(f"{self.name}: the vision MLP must be a whole multiple of embed_dim (mlp_ratio)")

    def tokenizer(self) -> LlamaTokenizer:
        tokenizer = train_llama_tokenizer(self.tokenizer_vocab_size, self.context_length)
        tokenizer.add_special_tokens(
            {"extra_special_tokens": list(SPECIAL_TOKENS), "pad_token": "<pad>", "eos_token": END_OF_TURN}
        )
        # One token, as in Qwen's tokenizer: the Metaspace tokenizer would write a lone "\n" with a "▁" before it.
        tokenizer.add_tokens(["\n"])
        tokenizer.chat_template = CHAT_TEMPLATE
        return tokenizer

    def vision_config(self) -> dict[str, object]:
        return {
            "depth": self.vision.layers,
            "embed_dim": self.vision.hidden,
            "num_heads": self.vision.heads,
            "mlp_ratio": self.vision.intermediate // self.vision.hidden,
            "hidden_size": self.text.hidden,  # the merger's output: the language model's width
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        }

    vision_mlp_ratio: ClassVar[bool] = True  # Qwen2-VL sizes its vision MLP as a multiple of its width
    config_class: ClassVar[type[PreTrainedConfig]] = Qwen2VLConfig
    model_class: ClassVar[type[PreTrainedModel]] = Qwen2VLForConditionalGeneration
    processor_class: ClassVar[type[ProcessorMixin]] = Qwen2VLProcessor

    def config(self, tokenizer: LlamaTokenizer) -> PreTrainedConfig:
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
        return self.config_class(
            vision_config=self.vision_config(),
            text_config={
                **self.text.text_config(self.vocab_size or len(tokenizer), self.context_length),
                "num_key_value_heads": self.text.kv_heads or self.text.heads,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 1_000_000.0,
                    "mrope_section": list(self.mrope_section),
                },
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            image_token_id=ids[IMAGE_TOKEN],
            video_token_id=ids[VIDEO_TOKEN],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
            tie_word_embeddings=False,
        )

    def processor(self, tokenizer: LlamaTokenizer) -> ProcessorMixin:
        pixels = {"min_pixels": self.min_pixels, "max_pixels": self.max_pixels}
        return self.processor_class(
            image_processor=Qwen2VLImageProcessorPil(**pixels),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(**pixels),
            chat_template=CHAT_TEMPLATE,
        )

    def build(self, out: Path) -> Path:
        tokenizer = self.tokenizer()
        torch.manual_seed(self.seed)
        model = self.model_class(self.config(tokenizer)).eval()
        model.generation_config = GenerationConfig(  # greedy: no sampling, no penalties
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        self.processor(tokenizer).save_pretrained(out)
        return out


@dataclass(frozen=True)
class Qwen2_5VLPreset(Qwen2VLPreset):
    """Qwen2.5-VL (``Qwen/Qwen2.5-VL-*-Instruct``'s layout): the vision tower has RMSNorm, gated MLPs and window
    attention (windows of ``window_size`` pixels) in every block but ``full_attention_blocks``."""

    window_size: int = 112
    full_attention_blocks: tuple[int, ...] = ()

    vision_mlp_ratio: ClassVar[bool] = False
    config_class: ClassVar[type[PreTrainedConfig]] = Qwen2_5_VLConfig
    model_class: ClassVar[type[PreTrainedModel]] = Qwen2_5_VLForConditionalGeneration
    processor_class: ClassVar[type[ProcessorMixin]] = Qwen2_5_VLProcessor

    def vision_config(self) -> dict[str, object]:
        return {
            "depth": self.vision.layers,
            "hidden_size": self.vision.hidden,
            "intermediate_size": self.vision.intermediate,
            "num_heads": self.vision.heads,
            "out_hidden_size": self.text.hidden,
            "window_size": self.window_size,
            "fullatt_block_indexes": list(self.full_attention_blocks),
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        }


# Images from 2 x 2 to 8 x 8 merged tokens (56 x 56 to 224 x 224 pixels' worth): 4 to 64 tokens an image by its size.
# A vision tower of 32 wide, two query heads of 32 sharing one key/value head in the language model.
TINY_QWEN2_VL = Qwen2VLPreset(
    name="tiny-qwen2-vl",
    vision=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
    text=TowerShape(hidden=64, layers=2, heads=2, intermediate=128, kv_heads=1),
    mrope_section=(4, 6, 6),
    min_pixels=56 * 56,
    max_pixels=28 * 28 * 64,
    context_length=1024,
    tokenizer_vocab_size=1000,
)
# Qwen2.5-VL's: windows of 112 pixels (4 x 4 tokens), so images past 112 pixels a side span several; blocks 1 and 3
# of 4 attend to the whole image.
TINY_QWEN2_5_VL = Qwen2_5VLPreset(
    name="tiny-qwen2.5-vl",
    vision=TowerShape(hidden=32, layers=4, heads=2, intermediate=64),
    text=TowerShape(hidden=64, layers=2, heads=2, intermediate=128, kv_heads=1),
    mrope_section=(4, 6, 6),
    min_pixels=56 * 56,
    max_pixels=28 * 28 * 64,
    context_length=1024,
    tokenizer_vocab_size=1000,
    full_attention_blocks=(1, 3),
)
# Real-size shapes with random weights, for benchmarks and capacity planning: Qwen/Qwen2-VL-2B-Instruct and
# Qwen/Qwen2.5-VL-7B-Instruct (their towers, language models, vocabularies and pixel budgets; untied embeddings).
QWEN2_VL_2B = Qwen2VLPreset(
    name="qwen2-vl-2b",
    vision=TowerShape(hidden=1280, layers=32, heads=16, intermediate=5120),
    text=TowerShape(hidden=1536, layers=28, heads=12, intermediate=8960, kv_heads=2),
    mrope_section=(16, 24, 24),
    min_pixels=56 * 56,
    max_pixels=28 * 28 * 16384,
    context_length=32768,
    tokenizer_vocab_size=1000,
    vocab_size=151936,
)
QWEN2_5_VL_7B = Qwen2_5VLPreset(
    name="qwen2.5-vl-7b",
    vision=TowerShape(hidden=1280, layers=32, heads=16, intermediate=3420),
    text=TowerShape(hidden=3584, layers=28, heads=28, intermediate=18944, kv_heads=4),
    mrope_section=(16, 24, 24),
    min_pixels=56 * 56,
    max_pixels=28 * 28 * 16384,
    context_length=128000,
    tokenizer_vocab_size=1000,
    vocab_size=152064,
    full_attention_blocks=(7, 15, 23, 31),
)
# Qwen2.5-VL-7B's vision tower (the published shape, which Qwen2.5-VL's 3B to 72B towers share but for the merger's
# output width) before a one-layer language model of the 7B's width and the tokenizer's vocabulary: the GPU precision
# check measures the real-size tower without building an 8B-parameter checkpoint first.
QWEN2_5_VL_7B_TOWER = replace(
    QWEN2_5_VL_7B,
    name="qwen2.5-vl-7b-tower",
    text=replace(QWEN2_5_VL_7B.text, layers=1, intermediate=QWEN2_5_VL_7B.text.hidden),
    context_length=2048,
    vocab_size=None,
)
# The benchmark's (make bench, on 2 CPU cores): Qwen2-VL's layout scaled down, since the real tower (1280 wide, 32
# blocks) takes minutes per large image there. A 4-block tower 256 wide and a 4-layer language model 512 wide; the
# pixel budget stops at 256 merged tokens (448 x 448 pixels' worth), so a 1080p image is decoded and resized in full
# (the preprocessing this benchmark loads) and then costs the tower no more than a 448 x 448 one.
BENCH_QWEN2_VL = Qwen2VLPreset(
    name="bench-qwen2-vl",
    vision=TowerShape(hidden=256, layers=4, heads=4, intermediate=1024),
    text=TowerShape(hidden=512, layers=4, heads=8, intermediate=1536, kv_heads=2),
    mrope_section=(8, 12, 12),
    min_pixels=56 * 56,
    max_pixels=28 * 28 * 256,
    context_length=2048,
    tokenizer_vocab_size=1000,
)
QWEN2_VL_PRESETS = (TINY_QWEN2_VL, TINY_QWEN2_5_VL, QWEN2_VL_2B, QWEN2_5_VL_7B, QWEN2_5_VL_7B_TOWER, BENCH_QWEN2_VL)
