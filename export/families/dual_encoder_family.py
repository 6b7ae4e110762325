"""One family class for every image-text dual encoder (CLIP, SigLIP, ...): a family is its names, its served models
(export/families/dual_encoder.py), the loader that reads its checkpoint into towers, processor and calibration, and
the export and parity inputs where they differ from the shared ones. The registry imports no torch: the loader and
the exporter are named here and imported when a checkpoint is exported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from export.families.base import ExportOptions, FeedMaker
from export.families.dual_encoder import DualEncoderModels
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec

if TYPE_CHECKING:
    from export.families.dual_encoder_export import LoadedDualEncoder
    from export.families.measured import MeasuredComponent

T = TypeVar("T")
Loader = Callable[[Path], "LoadedDualEncoder"]
# (the family's models, its loaded checkpoint, repository, opset, precision, QDQ precision) -> parity reports
Exporter = Callable[[DualEncoderModels, "LoadedDualEncoder", Path, int, str, str | None], list[ParityReport]]


@dataclass(frozen=True)
class Lazy(Generic[T]):
    """``module.attribute``, imported on first use (torch, onnxruntime and tritonclient stay out of the registry)."""

    module: str
    attribute: str

    def get(self) -> T:
        return cast(T, getattr(importlib.import_module(self.module), self.attribute))


@dataclass(frozen=True)
class DualEncoderFamily:
    name: str
    title: str  # as people write it, in messages
    architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    named_specs: Callable[[str], DualEncoderModels]  # the served models of a checkpoint, by its name
    loader: Lazy[Loader]
    exporter: Lazy[Exporter] = Lazy("export.families.dual_encoder_export", "export_dual_encoder")
    image_feeds: Lazy[FeedMaker] = Lazy("export.parity_feeds", "pixel_feeds")  # the vision engine's check inputs
    checked_in: bool = False
    decoder_inputs: tuple[str, ...] = field(default=(), init=False)
    image_encoding: str = field(default="encoded by the exported vision tower", init=False)

    @property
    def specs(self) -> DualEncoderModels:
        """The served models under the family's own name."""
        return self.named_specs(self.name)

    def _named(self, name: str | None) -> DualEncoderModels:
        return self.named_specs(name or self.name)

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return self._named(options.name).all()

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        specs = self._named(name)
        return (specs.vision, specs.text)

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        from export.parity_feeds import token_feeds

        specs = self._named(name)
        return {specs.vision.name: self.image_feeds.get(), specs.text.name: token_feeds(specs.tokenize)}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        from export.families.measured import dual_encoder_components

        return dual_encoder_components(self.specs, self.loader.get()(checkpoint), device)

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        return 0

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        if options.fuse_projector:
            raise ValueError(f"--fuse-projector: a {self.title} checkpoint has no projector to fuse")
        loaded = self.loader.get()(checkpoint)
        named = self._named(options.name)
        return self.exporter.get()(named, loaded, repository, options.opset, options.precision, options.qdq)
