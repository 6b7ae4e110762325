"""SigLIP checkpoints (``SiglipModel``) in the google/siglip-* layout, made locally from a seed like the CLIP
presets: model and ``SiglipProcessor`` (the tokenizer, trained here, and the image processor: resize without a
crop, mean and std 0.5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, SiglipConfig, SiglipModel, SiglipProcessor
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from checkpoints.dual_encoder_preset import DualEncoderPreset
from checkpoints.tokenizer_training import train_siglip_tokenizer
from checkpoints.tower_shape import TowerShape


@dataclass(frozen=True, kw_only=True)
class SiglipPreset(DualEncoderPreset):
    context_length: int = 64
    # SigLIP's initial calibration (log 10 and -10); a trained checkpoint moves them, the score keeps the form.
    logit_scale: float = math.log(10)
    logit_bias: float = -10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision.hidden != self.text.hidden:
            raise ValueError(f"{self.name}: the towers' hidden sizes must be equal (one embedding space)")

    def build(self, out: Path) -> Path:
        tokenizer = train_siglip_tokenizer(self.tokenizer_vocab_size, self.context_length)
        self.check_tokenizer(tokenizer)
        # SigLIP's tokenizer has no start token: its end token stands in.
        text_config = self.text_config(tokenizer, bos_token_id=tokenizer.eos_token_id)
        torch.manual_seed(self.seed)
        model = self.model(text_config, self.vision_config()).eval()
        with torch.no_grad():
            model.logit_scale.fill_(self.logit_scale)
            model.logit_bias.fill_(self.logit_bias)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        self.processor(tokenizer).save_pretrained(out)
        return out

    def model(self, text_config: dict[str, Any], vision_config: dict[str, Any]) -> Any:
        return SiglipModel(SiglipConfig(text_config=text_config, vision_config=vision_config))

    def processor(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        image_processor = SiglipImageProcessorPil(size={"height": self.image_size, "width": self.image_size})
        return SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)


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
# google/siglip-base-patch16-224's shapes with random weights, for the benchmark (weights do not change speed): ViT-B/16
# towers of 768, a 64-token context padded to its length. The tokenizer is trained small here; the vocabulary keeps
# the real size (the token embedding table's memory).
SIGLIP_BASE_PATCH16_224 = SiglipPreset(
    name="siglip-base-patch16-224",
    image_size=224,
    patch_size=16,
    vision=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),
    text=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),
    vocab_size=32000,
    tokenizer_vocab_size=2048,
    context_length=64,
)
SIGLIP_PRESETS = (TINY_SIGLIP, SIGLIP_BASE_PATCH16_224)
