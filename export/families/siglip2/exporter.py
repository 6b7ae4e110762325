"""SigLIP2 NaFlex export: the vision tower takes patches, their mask and each image's patch grid, and resizes its
position embeddings per image inside the graph (export/families/siglip2/naflex.py); the text tower is SigLIP's. Both
L2-normalised as ``Siglip2Model(...)`` normalises them; the processor and the sigmoid's calibration are saved as
SigLIP's (export/families/dual_encoder_export.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from transformers import AutoProcessor, Siglip2Model
from transformers.masking_utils import create_bidirectional_mask

from export.families.dual_encoder_export import LoadedDualEncoder
from export.families.siglip.exporter import loaded_siglip
from export.families.siglip2.feeds import naflex_inputs
from export.families.siglip2.naflex import resized_positions


class VisionEncoder(torch.nn.Module):
    """pixel_values [B, P, C*p*p], pixel_attention_mask [B, P], spatial_shapes [B, 2] -> L2-normalised image embedding
    (``Siglip2Model(...).image_embeds``): ``Siglip2VisionModel.forward`` with the position-embedding resize as a graph
    that holds for any patch grid."""

    def __init__(self, model: Siglip2Model) -> None:
        super().__init__()
        self.vision_model = model.vision_model

    def forward(
        self, pixel_values: torch.Tensor, pixel_attention_mask: torch.Tensor, spatial_shapes: torch.Tensor
    ) -> torch.Tensor:
        tower = self.vision_model
        embeddings = tower.embeddings
        patches = embeddings.patch_embedding(pixel_values.to(embeddings.patch_embedding.weight.dtype))
        side = embeddings.position_embedding_size
        grid = embeddings.position_embedding.weight.reshape(side, side, -1)
        hidden = patches + resized_positions(grid, spatial_shapes, pixel_values.shape[1]).to(patches.dtype)
        mask = create_bidirectional_mask(config=tower.config, inputs_embeds=hidden, attention_mask=pixel_attention_mask)
        hidden = tower.post_layernorm(tower.encoder(inputs_embeds=hidden, attention_mask=mask).last_hidden_state)
        return torch.nn.functional.normalize(tower.head(hidden, pixel_attention_mask), dim=-1)


def load_siglip2(checkpoint: Path) -> LoadedDualEncoder:
    """The towers (float32), processor, sizes and score calibration that the export and the GPU check read;
    ``ValueError`` for a checkpoint the served models cannot reproduce."""
    model = Siglip2Model.from_pretrained(checkpoint, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses
    vision = model.config.vision_config
    if not getattr(model.vision_model, "use_head", True):
        raise ValueError("the vision tower has no pooling head (vision_use_head is false): no image embedding")
    max_num_patches = processor.image_processor.max_num_patches
    patch_dim = vision.num_channels * vision.patch_size * vision.patch_size
    image = {"max_num_patches": max_num_patches, "patch_dim": patch_dim}
    feeds = partial(naflex_inputs, max_num_patches, patch_dim)
    return loaded_siglip(model, processor, VisionEncoder(model), image, feeds)
