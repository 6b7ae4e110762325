"""Idefics3 checkpoints (SigLIP-style vision tower, pixel-shuffle connector, Llama decoder) in the layout of
``HuggingFaceM4/Idefics3-8B-Llama3``: the family served with vLLM encoding the images itself.

Made locally from a seed like the other presets: model, ``Idefics3Processor`` (tokenizer with Idefics3's image
tokens, the image processor that splits an image into tiles plus a global view, the chat template) and generation
config, loadable with ``Idefics3ForConditionalGeneration`` and ``AutoProcessor``, and by vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    LlamaTokenizer,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from checkpoints.llava_preset import VLLM_CPU_HEAD_SIZES
from checkpoints.tokenizer_training import train_llama_tokenizer
from checkpoints.tower_shape import TowerShape

IMAGE_TOKEN = "<image>"
MAX_GRID = 6  # Idefics3Processor names tiles <row_1_col_1> .. <row_6_col_6>
# The tokens Idefics3's processor writes around and between an image's tiles, one token each as in the real
# tokenizers (its token counts assume so). "\n" is one too: the trained Llama tokenizer would write a lone "\n\n" as
# "▁", "\n", "\n" (its Metaspace prefix), which makes the processor's own count one token too many per image.
IMAGE_TOKENS = (
    "<fake_token_around_image>",
    IMAGE_TOKEN,
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{row}_col_{col}>" for row in range(1, MAX_GRID + 1) for col in range(1, MAX_GRID + 1)),
)
# SmolVLM's template ("<|im_start|>User:<image>What is it?<end_of_utterance>\nAssistant:"), which renders
# plain-string content too.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}"
    "{% elif item['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class Idefics3Preset:
    name: str
    tile_size: int  # the vision tower's image size: each tile and the global view are resized to it
    patch_size: int
    scale_factor: int  # the connector's pixel shuffle: scale_factor**2 patches become one image token
    max_tiles: int  # per side: an image's longest edge is resized to max_tiles * tile_size, then cut into tiles
    vision: TowerShape
    text: TowerShape
    context_length: int
    tokenizer_vocab_size: int
    seed: int = 0

    def __post_init__(self) -> None:
        patches = self.tile_size // self.patch_size
        if self.tile_size % self.patch_size or patches % self.scale_factor:
            raise ValueError(f"{self.name}: the tile's patches must be a multiple of the scale factor on each side")
        if not 1 <= self.max_tiles <= MAX_GRID:
            raise ValueError(f"{self.name}: max_tiles must be 1 to {MAX_GRID} (the processor's row/column tokens)")
        if self.text.head_size not in VLLM_CPU_HEAD_SIZES:
            raise ValueError(
                f"{self.name}: the language model's head size {self.text.head_size} has no vLLM CPU kernel"
            )

    @property
    def image_seq_len(self) -> int:
        """Image tokens per tile (and for the global view)."""
        return (self.tile_size // self.patch_size) ** 2 // self.scale_factor**2

    def tokenizer(self) -> LlamaTokenizer:
        tokenizer = train_llama_tokenizer(self.tokenizer_vocab_size, self.context_length)
        tokenizer.add_special_tokens({"extra_special_tokens": [*IMAGE_TOKENS, "<|im_start|>"], "pad_token": "<pad>"})
        tokenizer.add_tokens(["\n"])
        tokenizer.chat_template = CHAT_TEMPLATE
        return tokenizer

    def config(self, tokenizer: LlamaTokenizer) -> Idefics3Config:
        return Idefics3Config(
            vision_config=self.vision.vision_config(self.tile_size, self.patch_size),
            text_config={
                "model_type": "llama",
                **self.text.text_config(len(tokenizer), self.context_length),
                "num_key_value_heads": self.text.kv_heads or self.text.heads,
                "head_dim": self.text.head_size,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            scale_factor=self.scale_factor,
            image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )

    def processor(self, tokenizer: LlamaTokenizer) -> Idefics3Processor:
        image_processor = Idefics3ImageProcessorPil(
            size={"longest_edge": self.max_tiles * self.tile_size},
            max_image_size={"longest_edge": self.tile_size},
        )
        return Idefics3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            image_seq_len=self.image_seq_len,
            chat_template=CHAT_TEMPLATE,
        )

    def build(self, out: Path) -> Path:
        tokenizer = self.tokenizer()
        torch.manual_seed(self.seed)
        model = Idefics3ForConditionalGeneration(self.config(tokenizer)).eval()
        model.generation_config = GenerationConfig(  # greedy: no sampling, no penalties
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        self.processor(tokenizer).save_pretrained(out)
        return out


# 32 px tiles of 4 x 4 patches, 4 image tokens each after the pixel shuffle; images up to 3 x 3 tiles (96 px) plus
# the global view: 16 to 66 tokens an image by its size and aspect ratio. Two query heads of 32 sharing one
# key/value head.
TINY_IDEFICS3 = Idefics3Preset(
    name="tiny-idefics3",
    tile_size=32,
    patch_size=8,
    scale_factor=2,
    max_tiles=3,
    vision=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
    text=TowerShape(hidden=64, layers=2, heads=2, intermediate=128, kv_heads=1),
    context_length=1024,
    tokenizer_vocab_size=1000,
)
IDEFICS3_PRESETS = (TINY_IDEFICS3,)
