"""CLIP (``CLIPModel``): image and text towers, each projected and L2-normalised inside its exported graph; ranking
by a softmax over the texts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, FeedMaker, Probe
from export.families.clip.spec import CLIP, CLIP_MODELS
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent


class ClipFamily:
    name: str = "clip"
    architectures: tuple[str, ...] = ("CLIPModel",)
    model_types: tuple[str, ...] = ("clip",)
    checked_in: bool = True
    decoder_inputs: tuple[str, ...] = ()
    probe: Probe = Probe(CLIP.rank.name, "rank")

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return CLIP_MODELS

    def encoder_variants(self) -> tuple[OnnxComponentSpec, ...]:
        return (CLIP.vision, CLIP.text)

    def parity_feeds(self) -> Mapping[str, FeedMaker]:
        from export.parity_feeds import pixel_feeds, token_feeds

        return {CLIP.vision.name: pixel_feeds, CLIP.text.name: token_feeds(CLIP.tokenize)}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        from export.families.clip.exporter import load_clip
        from export.families.measured import dual_encoder_components

        return dual_encoder_components(CLIP, load_clip(checkpoint), device)

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        return 0

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.clip.exporter import export_clip

        if options.fuse_projector:
            raise ValueError("--fuse-projector: a CLIP checkpoint has no projector to fuse")
        return export_clip(checkpoint, repository, opset=options.opset)
