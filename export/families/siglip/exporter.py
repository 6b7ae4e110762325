"""SigLIP export: the vision tower (attention-pooling head) and the text tower (last position through its head),
each L2-normalised inside the graph as ``SiglipModel(...)`` normalises them, plus the tokenizer, the image processor
and the logit scale and bias of the sigmoid score (export/families/dual_encoder_export.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, SiglipModel

from export.families.base import Feeds
from export.families.dual_encoder_export import (
    DualEncoderSizes,
    LoadedDualEncoder,
    square_pixel_feeds,
)


class VisionEncoder(torch.nn.Module):
    """pixel_values -> L2-normalised image embedding (``SiglipModel(...).image_embeds``)."""

    def __init__(self, model: SiglipModel) -> None:
        super().__init__()
        self.vision_model = model.vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.vision_model(pixel_values=pixel_values).pooler_output, dim=-1)


class TextEncoder(torch.nn.Module):
    """input_ids, attention_mask -> L2-normalised text embedding (``SiglipModel(...).text_embeds``, and SigLIP2's)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.text_model = model.text_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return torch.nn.functional.normalize(pooled, dim=-1)


def load_siglip(checkpoint: Path) -> LoadedDualEncoder:
    """The towers (float32), processor, sizes and score calibration that the export and the GPU check read;
    ``ValueError`` for a checkpoint the served models cannot reproduce."""
    model = SiglipModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses
    image_size = model.config.vision_config.image_size
    return loaded_siglip(
        model, processor, VisionEncoder(model), {"image_size": image_size}, square_pixel_feeds(image_size)
    )


def loaded_siglip(
    model: Any,
    processor: Any,
    vision: torch.nn.Module,
    image: Mapping[str, int],
    vision_feeds: Callable[[tuple[int, ...]], Feeds],
) -> LoadedDualEncoder:
    """What a SigLIP-style checkpoint (SigLIP, SigLIP2) gives the export besides its vision tower: the text tower, the
    sizes and the sigmoid's calibration; ``ValueError`` for a checkpoint the served models cannot reproduce."""
    tokenizer = processor.tokenizer
    config = model.config
    image_dim, text_dim = config.vision_config.hidden_size, config.text_config.projection_size
    if image_dim != text_dim:
        raise ValueError(f"image embeddings have {image_dim} values but text embeddings {text_dim}")
    context_length = min(tokenizer.model_max_length, config.text_config.max_position_embeddings)
    tokenizer.model_max_length = context_length
    sizes = DualEncoderSizes(
        image=image,
        embed_dim=image_dim,
        context_length=context_length,
        max_token_id=config.text_config.vocab_size - 1,
        pad_token_id=tokenizer.pad_token_id,
    )
    scale, bias = float(model.logit_scale.detach().exp()), float(model.logit_bias.detach())
    return LoadedDualEncoder(vision, TextEncoder(model), processor, sizes, scale, bias, vision_feeds)
