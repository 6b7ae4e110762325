"""Checkpoints made locally and deterministically from a seed, in the standard Hugging Face layout.

``tiny-*`` presets are for tests; the others have real architectures' shapes with random weights, for
export checks, capacity planning and benchmarks (weights do not change speed). ``shapes-clip`` and
``shapes-llava`` are trained (a few minutes each on CPU) on a synthetic world of coloured shapes, so that
their answers mean something.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from checkpoints.clip_training import SHAPES_CLIP_PRESET, ShapesClipPreset
from checkpoints.dual_encoder_preset import DualEncoderPreset
from checkpoints.idefics3_preset import IDEFICS3_PRESETS, Idefics3Preset
from checkpoints.llava_next_preset import LLAVA_NEXT_PRESETS
from checkpoints.llava_preset import LLAVA_PRESETS, LlavaPreset
from checkpoints.llava_training import SHAPES_LLAVA_PRESET, ShapesLlavaPreset
from checkpoints.qwen2_vl_preset import QWEN2_VL_PRESETS, Qwen2VLPreset
from checkpoints.siglip2_preset import SIGLIP2_PRESETS
from checkpoints.siglip_preset import SIGLIP_PRESETS, SiglipPreset
from checkpoints.tokenizer_training import train_clip_tokenizer
from checkpoints.tower_shape import TowerShape


@dataclass(frozen=True, kw_only=True)
class ClipPreset(DualEncoderPreset):
    projection_dim: int
    context_length: int = 77

    def build(self, out: Path) -> Path:
        tokenizer = train_clip_tokenizer(self.tokenizer_vocab_size, self.context_length)
        self.check_tokenizer(tokenizer)
        config = CLIPConfig(
            text_config=self.text_config(tokenizer, bos_token_id=tokenizer.bos_token_id),
            vision_config=self.vision_config(),
            projection_dim=self.projection_dim,
        )
        torch.manual_seed(self.seed)
        model = CLIPModel(config).eval()
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": self.image_size},
            crop_size={"height": self.image_size, "width": self.image_size},
            image_mean=OPENAI_CLIP_MEAN,
            image_std=OPENAI_CLIP_STD,
        )
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
        return out


PRESETS: dict[
    str, ClipPreset | LlavaPreset | SiglipPreset | ShapesClipPreset | ShapesLlavaPreset | Idefics3Preset | Qwen2VLPreset
] = {
    preset.name: preset
    for preset in (
        ClipPreset(
            name="tiny-clip",
            image_size=64,
            patch_size=16,
            vision=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
            text=TowerShape(hidden=32, layers=2, heads=2, intermediate=64),
            projection_dim=32,
            vocab_size=1024,
            tokenizer_vocab_size=768,
        ),
        ClipPreset(
            name="clip-vit-base-patch32",
            image_size=224,
            patch_size=32,
            vision=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),
            text=TowerShape(hidden=512, layers=12, heads=8, intermediate=2048),
            projection_dim=512,
            vocab_size=49408,
            tokenizer_vocab_size=2048,
        ),
        ClipPreset(
            name="clip-vit-large-patch14-336",
            image_size=336,
            patch_size=14,
            vision=TowerShape(hidden=1024, layers=24, heads=16, intermediate=4096),
            text=TowerShape(hidden=768, layers=12, heads=12, intermediate=3072),
            projection_dim=768,
            vocab_size=49408,
            tokenizer_vocab_size=2048,
        ),
        *LLAVA_PRESETS,
        *LLAVA_NEXT_PRESETS,
        *SIGLIP_PRESETS,
        *SIGLIP2_PRESETS,
        *IDEFICS3_PRESETS,
        *QWEN2_VL_PRESETS,
        SHAPES_CLIP_PRESET,
        SHAPES_LLAVA_PRESET,
    )
}


def build_preset(name: str, out: Path) -> Path:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name].build(out)
