"""SigLIP checkpoints (``SiglipModel``) in the google/siglip-* layout, made locally from a seed like the CLIP
presets: model and ``SiglipProcessor`` (the tokenizer, trained here, and the image processor: resize without a
crop, mean and std 0.5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import SiglipConfig, SiglipModel, SiglipProcessor
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from checkpoints.tokenizer_training import train_siglip_tokenizer
from checkpoints.tower_shape import TowerShape


@dataclass(frozen=True)
class SiglipPreset:
    name: str
    image_size: int
    patch_size: int
    vision: TowerShape
    text: TowerShape  # hidden must equal the vision tower's: the embeddings share one space
    vocab_size: int
    tokenizer_vocab_size: int
    context_length: int = 64
    # SigLIP's initial calibration (log 10 and -10); a trained checkpoint moves them, the score keeps the form.
    logit_scale: float = math.log(10)
    logit_bias: float = -10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"{self.name}: image size must be a multiple of the patch size")
        if self.vision.hidden != self.text.hidden:
            raise ValueError(f"{self.name}: the towers' hidden sizes must be equal (one embedding space)")
        if self.tokenizer_vocab_size > self.vocab_size:
            raise ValueError(f"{self.name}: the tokenizer cannot have more tokens than the model's vocabulary")

    def build(self, out: Path) -> Path:
        tokenizer = train_siglip_tokenizer(self.tokenizer_vocab_size, self.context_length)
        if len(tokenizer) > self.vocab_size:
            raise ValueError(f"{self.name}: the tokenizer has {len(tokenizer)} tokens, the model {self.vocab_size}")
        config = SiglipConfig(
            text_config={
                "vocab_size": self.vocab_size,
                "hidden_size": self.text.hidden,
                "intermediate_size": self.text.intermediate,
                "num_hidden_layers": self.text.layers,
                "num_attention_heads": self.text.heads,
                "max_position_embeddings": self.context_length,
                "bos_token_id": tokenizer.eos_token_id,  # SigLIP's tokenizer has no start token
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={
                "hidden_size": self.vision.hidden,
                "intermediate_size": self.vision.intermediate,
                "num_hidden_layers": self.vision.layers,
                "num_attention_heads": self.vision.heads,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
            },
        )
        torch.manual_seed(self.seed)
        model = SiglipModel(config).eval()
        with torch.no_grad():
            model.logit_scale.fill_(self.logit_scale)
            model.logit_bias.fill_(self.logit_bias)
        image_processor = SiglipImageProcessorPil(size={"height": self.image_size, "width": self.image_size})
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
        return out


TINY_SIGLIP = SiglipPreset(
    name="tiny-siglip",
    image_size=64,
    patch_size=16,
    vision=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
    text=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
    vocab_size=1024,
    tokenizer_vocab_size=600,
    context_length=16,
)
SIGLIP_PRESETS = (TINY_SIGLIP,)
