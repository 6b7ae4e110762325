"""The SigLIP family's served models: the dual-encoder shape (export/families/dual_encoder.py) with SigLIP's traits,
every text padded to the whole context as its processor does (the text tower pools the last position, so the
padding is part of the embedding) and a sigmoid per image-text pair instead of a softmax over the texts."""

from __future__ import annotations

from export.families.dual_encoder import DualEncoderModels, dual_encoder_models

FAMILY = "siglip"


def siglip_models(name: str = FAMILY) -> DualEncoderModels:
    """The served models of the SigLIP checkpoint ``name`` (``vlm-export model --name``)."""
    return dual_encoder_models(name, FAMILY, text_padding="max_length", scoring="sigmoid")


SIGLIP = siglip_models()
