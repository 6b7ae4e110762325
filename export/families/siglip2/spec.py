"""The SigLIP2 family's served models: SigLIP's (texts padded to the whole context, a sigmoid per image-text pair)
with NaFlex images: the preprocess step hands the vision tower patches, their mask and each image's patch grid."""

from __future__ import annotations

from export.families.dual_encoder import dual_encoder_models

SIGLIP2 = dual_encoder_models("siglip2", text_padding="max_length", scoring="sigmoid", pixels="patches")
