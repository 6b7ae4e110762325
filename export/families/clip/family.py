"""CLIP (``CLIPModel``): image and text towers, each projected and L2-normalised inside its exported graph; ranking
by a softmax over the texts."""

from __future__ import annotations

from export.families.clip.spec import clip_models
from export.families.dual_encoder_family import DualEncoderFamily, Lazy

CLIP_FAMILY = DualEncoderFamily(
    name="clip",
    title="CLIP",
    architectures=("CLIPModel",),
    model_types=("clip",),
    named_specs=clip_models,
    loader=Lazy("export.families.clip.exporter", "load_clip"),
    checked_in=True,
)
