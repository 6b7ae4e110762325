"""CLIP export: vision and text encoders (projection and L2 normalisation inside the graph) to ONNX, each checked
against PyTorch, plus the tokenizer, image processor and logit scale the server needs
(export/families/dual_encoder_export.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor, CLIPModel

from export.families.dual_encoder_export import (
    DualEncoderSizes,
    LoadedDualEncoder,
    square_pixel_feeds,
)


class VisionEncoder(torch.nn.Module):
    """pixel_values -> L2-normalised image embedding (``CLIPModel(...).image_embeds``)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        return torch.nn.functional.normalize(self.visual_projection(pooled), dim=-1)


class TextEncoder(torch.nn.Module):
    """input_ids, attention_mask -> L2-normalised text embedding (``CLIPModel(...).text_embeds``)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.text_model = model.text_model
        self.text_projection = model.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return torch.nn.functional.normalize(self.text_projection(pooled), dim=-1)


def load_clip(checkpoint: Path) -> LoadedDualEncoder:
    """The towers (float32), processor, sizes and score calibration that the export and the GPU check read."""
    model = CLIPModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses
    tokenizer = processor.tokenizer
    context_length = min(tokenizer.model_max_length, model.config.text_config.max_position_embeddings)
    tokenizer.model_max_length = context_length
    sizes = DualEncoderSizes(
        image={"image_size": model.config.vision_config.image_size},
        embed_dim=model.config.projection_dim,
        context_length=context_length,
        max_token_id=model.config.text_config.vocab_size - 1,
        pad_token_id=tokenizer.pad_token_id,
    )
    scale = float(model.logit_scale.detach().exp())
    pixels = square_pixel_feeds(model.config.vision_config.image_size)
    return LoadedDualEncoder(VisionEncoder(model), TextEncoder(model), processor, sizes, scale, 0.0, pixels)
