"""SigLIP (``SiglipModel``): image and text towers, each L2-normalised inside its exported graph; ranking and
zero-shot classification by a sigmoid per pair, with the checkpoint's logit scale and bias."""

from __future__ import annotations

from export.families.dual_encoder_family import DualEncoderFamily, Lazy
from export.families.siglip.spec import siglip_models

SIGLIP_FAMILY = DualEncoderFamily(
    name="siglip",
    title="SigLIP",
    architectures=("SiglipModel",),
    model_types=("siglip",),
    named_specs=siglip_models,
    loader=Lazy("export.families.siglip.exporter", "load_siglip"),
    # exported on demand: the demo and the checked-in repository serve CLIP and LLaVA
)
