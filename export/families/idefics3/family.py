"""Idefics3 (``Idefics3ForConditionalGeneration``): its vision tower is not exported (yet), so vLLM encodes the
images inside the decoder; the ensemble still decodes and bounds them as LLaVA's does, behind the same contract."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from export.families.base import ExportOptions, WithoutEngineEncoders
from export.families.idefics3.spec import FAMILY, idefics3_models
from export.parity import ParityReport
from export.specs import ModelSpec
from serving.generation.processor_tokens import processor_image_tokens


@lru_cache(maxsize=4)
def _processor(checkpoint: str) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(checkpoint, backend="pil")


class Idefics3Family(WithoutEngineEncoders):
    name: str = FAMILY
    architectures: tuple[str, ...] = ("Idefics3ForConditionalGeneration",)
    model_types: tuple[str, ...] = ("idefics3",)
    checked_in: bool = False
    decoder_inputs: tuple[str, ...] = ("pixels", "image_sizes")
    image_encoding: str = (
        "encoded by vLLM inside the decoder: this project does not export Idefics3's vision tower (tiles by image "
        "size, pixel-shuffle connector) yet; the preprocess step decodes and bounds them as for LLaVA"
    )

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return idefics3_models(options.named(self.name))

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """By the checkpoint's processor (the config's own folder): tiles plus the global view, and their markers."""
        return processor_image_tokens(_processor(config.name_or_path), [(height, width)])[0]

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.idefics3.exporter import export_idefics3

        if options.fuse_projector:
            raise ValueError("--fuse-projector: an Idefics3 checkpoint's connector runs inside vLLM, not exported")
        if options.precision != ExportOptions.precision:
            raise ValueError(
                f"--precision {options.precision}: an Idefics3 checkpoint has no exported encoder to run at it"
            )
        export_idefics3(checkpoint, repository, options.named(self.name))
        return []
