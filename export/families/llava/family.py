"""LLaVA-1.5 (``LlavaForConditionalGeneration``): a CLIP vision tower's selected hidden layer and the projector,
exported; the language model runs in vLLM inside the decoder, handed the projected image embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, FeedMaker
from export.families.llava.spec import LlavaComponents, llava_components
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec
from serving.generation.checkpoint import image_tokens_per_image

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent


class LlavaFamily:
    name: str = "llava"
    architectures: tuple[str, ...] = ("LlavaForConditionalGeneration",)
    model_types: tuple[str, ...] = ("llava",)
    checked_in: bool = True
    decoder_inputs: tuple[str, ...] = ("image_embeds",)
    image_encoding: str = (
        "encoded by the exported vision tower and projector (ONNX Runtime or TensorRT, batched across requests); "
        "vLLM is handed their image embeddings"
    )

    def components(self, name: str) -> LlavaComponents:
        """The checkpoint ``name``'s models (LLaVA-NeXT's family names its own)."""
        return llava_components(name)

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return self.components(options.named(self.name)).models(options.fuse_projector)

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        components = self.components(name or self.name)
        return (components.vision, components.projector, components.vision_fused)

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        from export.parity_feeds import feature_feeds, pixel_feeds

        components = self.components(name or self.name)
        vision = components.vision.name
        return {vision: pixel_feeds, components.projector.name: feature_feeds(vision)}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        from export.families.llava.exporter import measured_components

        return measured_components(checkpoint, device, self.components(self.name))

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """LLaVA-1.5 resizes every image to the tower's square: the count does not depend on the size."""
        return image_tokens_per_image(config)

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.llava.exporter import export_llava

        return export_llava(
            checkpoint,
            repository,
            fuse_projector=options.fuse_projector,
            opset=options.opset,
            name=options.named(self.name),
            precision=options.precision,
            qdq=options.qdq,
        )
