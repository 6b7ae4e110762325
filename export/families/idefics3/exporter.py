"""Idefics3 export: nothing is converted. The checkpoint is checked to be one the decoder can serve (its processor
loads and counts image tokens), the configs are written, and ``idefics3_decoder`` links to the checkpoint, whose
language model, vision tower and processor vLLM loads in place."""

from __future__ import annotations

import os
from pathlib import Path

from export.families.idefics3.spec import idefics3_models
from export.families.llava.spec import CHECKPOINT_LINK
from serving.generation.processor_tokens import processor_image_tokens


def check_servable(checkpoint: Path) -> None:
    """``ValueError`` naming what is missing, before the repository changes."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")
        processor_image_tokens(processor, [(64, 64)])
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"the checkpoint's Idefics3 processor does not load or count image tokens: {error}") from None


def export_idefics3(checkpoint: Path, repository: Path, name: str) -> None:
    from export.repository import VERSION, write_repository

    checkpoint = checkpoint.resolve()
    check_servable(checkpoint)
    models = idefics3_models(name)
    write_repository(repository, models)
    _, decoder, _ = models
    version = repository / decoder.name / VERSION
    link = version / CHECKPOINT_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(checkpoint, link, target_is_directory=True)
