"""The CLIP family's served models: the dual-encoder shape (export/families/dual_encoder.py) with CLIP's traits,
texts padded to each request's longest (CLIP pools at the end-of-text token) and softmax scoring over the texts."""

from __future__ import annotations

from export.families.dual_encoder import DualEncoderModels, dual_encoder_models

FAMILY = "clip"


def clip_models(name: str = FAMILY) -> DualEncoderModels:
    """The served models of the CLIP checkpoint ``name`` (``vlm-export model --name``)."""
    return dual_encoder_models(name, FAMILY, text_padding="longest", scoring="softmax")


CLIP = clip_models()
CLIP_PREPROCESS = CLIP.preprocess
CLIP_VISION = CLIP.vision
CLIP_TOKENIZE = CLIP.tokenize
CLIP_TEXT = CLIP.text
CLIP_SIMILARITY = CLIP.similarity
CLIP_IMAGE_EMBED = CLIP.image_embed
CLIP_TEXT_EMBED = CLIP.text_embed
CLIP_RANK = CLIP.rank
CLIP_MODELS = CLIP.all()
