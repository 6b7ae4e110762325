"""LLaVA-NeXT (``LlavaNextForConditionalGeneration``): LLaVA's vision tower and projector, run on a base image and the
tiles of its best grid from ``image_grid_pinpoints`` (anyres); the packing step unpads the tiles' features to the
image's aspect ratio and appends the newline vector to each row; vLLM's decoder is handed each image's packed
embeddings, whose count depends on the image's size."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, FeedMaker
from export.families.llava_next.spec import FAMILY, llava_next_components
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec
from serving.anyres import AnyresGrid

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent


def anyres_grid(config: Any) -> AnyresGrid:
    """The checkpoint's tiling and the vision tower's patches per tile side."""
    vision = config.vision_config
    return AnyresGrid.of(config.image_grid_pinpoints, vision.image_size, vision.image_size // vision.patch_size)


class LlavaNextFamily:
    name: str = FAMILY
    architectures: tuple[str, ...] = ("LlavaNextForConditionalGeneration",)
    model_types: tuple[str, ...] = ("llava_next",)
    checked_in: bool = False  # exported on demand, like SigLIP
    decoder_inputs: tuple[str, ...] = ("image_embeds", "image_tokens")
    image_encoding: str = (
        "tiled (anyres) by its preprocess step, each tile encoded by the exported vision tower and projector (ONNX "
        "Runtime or TensorRT, batched across requests) and packed per image; vLLM is handed the packed embeddings"
    )

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return llava_next_components(options.named(self.name)).models(options.fuse_projector)

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        components = llava_next_components(name or self.name)
        return (components.vision, components.projector, components.vision_fused)

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        from export.parity_feeds import feature_feeds, pixel_feeds

        components = llava_next_components(name or self.name)
        vision = components.vision.name
        return {vision: pixel_feeds, components.projector.name: feature_feeds(vision)}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        from export.families.llava.exporter import measured_components

        return measured_components(checkpoint, device, llava_next_components(self.name))

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """The base image's patches, then the tiles' unpadded feature rows, each with its newline."""
        return anyres_grid(config).image_tokens(height, width)

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.llava_next.exporter import export_llava_next

        return export_llava_next(
            checkpoint,
            repository,
            fuse_projector=options.fuse_projector,
            opset=options.opset,
            name=options.named(self.name),
            precision=options.precision,
        )
