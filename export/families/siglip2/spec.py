"""The SigLIP2 family's served models: SigLIP's (texts padded to the whole context, a sigmoid per image-text pair)
with NaFlex images: the preprocess step hands the vision tower patches, their mask and each image's patch grid."""

from __future__ import annotations

from export.families.dual_encoder import DualEncoderModels, dual_encoder_models

FAMILY = "siglip2"


def siglip2_models(name: str = FAMILY) -> DualEncoderModels:
    """The served models of the SigLIP2 checkpoint ``name`` (``vlm-export model --name``)."""
    return dual_encoder_models(name, FAMILY, text_padding="max_length", scoring="sigmoid", pixels="patches")


SIGLIP2 = siglip2_models()
