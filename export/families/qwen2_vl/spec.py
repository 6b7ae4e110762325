"""The Qwen2-VL family's served models while vLLM encodes its images: Idefics3's shape (the preprocess step decodes and
bounds the images, LLaVA's decoder in its ``pixels`` image input mode hands them to vLLM, whose Qwen2-VL processor
resizes them within the checkpoint's pixel budget, expands each ``<|image_pad|>`` and runs the vision tower), named
after the checkpoint (``qwen2_vl``, ``qwen2_vl_preprocess``, ``qwen2_vl_decoder`` by default) and tagged as Qwen2-VL's.

Pure data (no torch).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from export.families.idefics3.spec import idefics3_models
from export.families.tags import served_tags
from export.specs import EnsembleSpec, ModelSpec

FAMILY = "qwen2_vl"


@cache  # one set of specs per name
def qwen2_vl_models(name: str = FAMILY) -> tuple[ModelSpec, ...]:
    """``<name>_preprocess``, ``<name>_decoder`` and the ensemble ``<name>``."""
    preprocess, decoder, ensemble = idefics3_models(name)
    if not isinstance(ensemble, EnsembleSpec):
        raise TypeError("the pixels-mode models end with their ensemble")
    tags = served_tags(FAMILY, name, "chat", probe="chat", text_model=decoder.name)
    return (preprocess, decoder, replace(ensemble, parameters=tags))
