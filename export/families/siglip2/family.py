"""SigLIP2 NaFlex (``Siglip2Model``): SigLIP's towers and sigmoid scoring, with images kept near their aspect ratio
as up to ``max_num_patches`` patches, the position embeddings resized to each image's patch grid inside the graph."""

from __future__ import annotations

from export.families.dual_encoder_family import DualEncoderFamily, Lazy
from export.families.siglip2.spec import siglip2_models

SIGLIP2_FAMILY = DualEncoderFamily(
    name="siglip2",
    title="SigLIP2",
    architectures=("Siglip2Model",),
    model_types=("siglip2",),
    named_specs=siglip2_models,
    loader=Lazy("export.families.siglip2.exporter", "load_siglip2"),
    image_feeds=Lazy("export.families.siglip2.feeds", "naflex_feeds"),
)
