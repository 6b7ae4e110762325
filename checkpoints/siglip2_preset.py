"""SigLIP2 NaFlex checkpoints (``Siglip2Model``) in the google/siglip2-*-naflex layout, made locally from a seed like
the SigLIP presets: the model and ``Siglip2Processor`` (the tokenizer, trained here, and the NaFlex image processor:
each image resized, keeping its aspect ratio, to at most ``max_num_patches`` patches, then cut into them).

``image_size`` is the side of the learned position-embedding grid in pixels (``num_patches`` = (image_size /
patch_size)^2): the tower resizes that grid to each image's patch grid."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from transformers import PreTrainedTokenizerBase, Siglip2Config, Siglip2Model, Siglip2Processor
from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

from checkpoints.siglip_preset import TINY_SIGLIP, SiglipPreset
from checkpoints.tower_shape import TowerShape


@dataclass(frozen=True, kw_only=True)
class Siglip2Preset(SiglipPreset):
    max_num_patches: int = 256  # the processor's budget per image (google/siglip2-*-naflex default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_num_patches < 1:
            raise ValueError(f"{self.name}: max_num_patches must be positive")

    def vision_config(self) -> dict[str, int]:
        grid = self.image_size // self.patch_size
        return {**self.vision.sizes(), "patch_size": self.patch_size, "num_patches": grid * grid}

    def model(self, text_config: dict[str, Any], vision_config: dict[str, Any]) -> Any:
        return Siglip2Model(Siglip2Config(text_config=text_config, vision_config=vision_config))

    def processor(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        image_processor = Siglip2ImageProcessorPil(patch_size=self.patch_size, max_num_patches=self.max_num_patches)
        return Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer)


# tiny-siglip's towers and tokenizer, with a 4x4 position grid that images of up to 64 patches stretch; texts padded to
# 64 tokens, as Siglip2Processor pads them whatever the checkpoint's tokenizer says.
TINY_SIGLIP2 = Siglip2Preset(
    **{f.name: getattr(TINY_SIGLIP, f.name) for f in fields(TINY_SIGLIP)}
    | {"name": "tiny-siglip2", "context_length": 64, "max_num_patches": 64}
)
# google/siglip2-so400m-patch16-naflex's shape: 27 layers of 1152 in both towers, a 16x16 position grid, 256 patches
# per image and 64 text tokens; random weights (speed does not depend on them) and a small trained tokenizer.
SIGLIP2_SO400M = Siglip2Preset(
    name="siglip2-so400m-patch16-naflex",
    image_size=256,
    patch_size=16,
    vision=TowerShape(hidden=1152, layers=27, heads=16, intermediate=4304),
    text=TowerShape(hidden=1152, layers=27, heads=16, intermediate=4304),
    vocab_size=256_000,
    tokenizer_vocab_size=2048,
    context_length=64,
    max_num_patches=256,
)
SIGLIP2_PRESETS = (TINY_SIGLIP2, SIGLIP2_SO400M)
