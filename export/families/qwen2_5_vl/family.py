"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): Qwen2-VL's preprocessing, token counts, served models and
decoder input (embeddings and grids into vLLM); its vision tower (RMSNorm, gated MLPs, window attention in all but a
few blocks) is exported by Qwen2-VL's exporter, which reads the windows from the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.families.base import ExportOptions
from export.families.qwen2_vl.family import Qwen2VLFamily
from export.families.qwen2_vl.spec import patch_models
from export.parity import ParityReport
from export.specs import ModelSpec

FAMILY = "qwen2_5_vl"


class Qwen2_5VLFamily(Qwen2VLFamily):
    name: str = FAMILY
    architectures: tuple[str, ...] = ("Qwen2_5_VLForConditionalGeneration",)
    model_types: tuple[str, ...] = ("qwen2_5_vl",)

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return patch_models(FAMILY, options.named(self.name), video_seconds=True)

    def vision_class(self) -> Any:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

        return Qwen2_5_VisionTransformerPretrainedModel

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.qwen2_vl.exporter import export_qwen2_vl

        self.check_options(options)
        name = options.named(self.name)
        return export_qwen2_vl(
            checkpoint,
            repository,
            name,
            options.opset,
            FAMILY,
            self.vision_class(),
            video_seconds=True,
        )
