"""SigLIP (``SiglipModel``): image and text towers, each L2-normalised inside its exported graph; ranking and
zero-shot classification by a sigmoid per pair, with the checkpoint's logit scale and bias."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, FeedMaker, Probe
from export.families.siglip.spec import SIGLIP
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent


class SiglipFamily:
    name = "siglip"
    architectures = ("SiglipModel",)
    model_types = ("siglip",)
    checked_in = False  # exported on demand: the demo and the checked-in repository serve CLIP and LLaVA
    decoder_inputs: tuple[str, ...] = ()
    probe = Probe(SIGLIP.rank.name, "rank")

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return SIGLIP.all()

    def encoder_variants(self) -> tuple[OnnxComponentSpec, ...]:
        return (SIGLIP.vision, SIGLIP.text)

    def parity_feeds(self) -> Mapping[str, FeedMaker]:
        from export.parity_feeds import pixel_feeds, token_feeds

        return {SIGLIP.vision.name: pixel_feeds, SIGLIP.text.name: token_feeds(SIGLIP.tokenize)}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        from export.families.measured import dual_encoder_components
        from export.families.siglip.exporter import load_siglip

        return dual_encoder_components(SIGLIP, load_siglip(checkpoint), device)

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        return 0

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.siglip.exporter import export_siglip

        if options.fuse_projector:
            raise ValueError("--fuse-projector: a SigLIP checkpoint has no projector to fuse")
        return export_siglip(checkpoint, repository, opset=options.opset)
