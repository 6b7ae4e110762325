"""The SigLIP family's served models: the dual-encoder shape (export/families/dual_encoder.py) with SigLIP's traits,
every text padded to the whole context as its processor does (the text tower pools the last position, so the
padding is part of the embedding) and a sigmoid per image-text pair instead of a softmax over the texts."""

from __future__ import annotations

from export.families.dual_encoder import dual_encoder_models

SIGLIP = dual_encoder_models("siglip", text_padding="max_length", scoring="sigmoid")
