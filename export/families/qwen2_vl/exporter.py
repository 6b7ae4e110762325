"""Qwen2-VL export while vLLM encodes its images: nothing is converted. The checkpoint is checked to be one the
decoder can serve (its processor loads and counts image tokens), the configs are written, and the decoder links to
the checkpoint, whose language model, vision tower and processor vLLM loads in place."""

from __future__ import annotations

import os
from pathlib import Path

from export.families.llava.spec import CHECKPOINT_LINK
from export.families.qwen2_vl.spec import qwen2_vl_models
from serving.generation.processor_tokens import processor_image_tokens


def check_servable(checkpoint: Path) -> None:
    """``ValueError`` naming what is missing, before the repository changes."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(checkpoint)  # its video processor has no "pil" backend
        processor_image_tokens(processor, [(64, 64)])
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as error:
        raise ValueError(f"the checkpoint's Qwen2-VL processor does not load or count image tokens: {error}") from None


def export_qwen2_vl(checkpoint: Path, repository: Path, name: str) -> None:
    from export.repository import VERSION, write_repository

    checkpoint = checkpoint.resolve()
    check_servable(checkpoint)
    models = qwen2_vl_models(name)
    write_repository(repository, models)
    _, decoder, _ = models
    link = repository / decoder.name / VERSION / CHECKPOINT_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(checkpoint, link, target_is_directory=True)
