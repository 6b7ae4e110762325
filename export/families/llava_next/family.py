"""LLaVA-NeXT (``LlavaNextForConditionalGeneration``): LLaVA's vision tower and projector, run on a base image and the
tiles of its best grid from ``image_grid_pinpoints`` (anyres); the packing step unpads the tiles' features to the
image's aspect ratio and appends the newline vector to each row; vLLM's decoder is handed each image's packed
embeddings, whose count depends on the image's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from export.families.base import ExportOptions
from export.families.llava.family import LlavaFamily
from export.families.llava_next.spec import FAMILY, LlavaNextComponents, llava_next_components
from export.parity import ParityReport
from serving.anyres import AnyresGrid


def anyres_grid(config: Any) -> AnyresGrid:
    """The checkpoint's tiling and the vision tower's patches per tile side."""
    vision = config.vision_config
    return AnyresGrid.of(config.image_grid_pinpoints, vision.image_size, vision.image_size // vision.patch_size)


class LlavaNextFamily(LlavaFamily):
    name: str = FAMILY
    architectures: tuple[str, ...] = ("LlavaNextForConditionalGeneration",)
    model_types: tuple[str, ...] = ("llava_next",)
    checked_in: bool = False  # exported on demand, like SigLIP
    decoder_inputs: tuple[str, ...] = ("image_embeds", "image_tokens")
    image_encoding: str = (
        "tiled (anyres) by its preprocess step, each tile encoded by the exported vision tower and projector (ONNX "
        "Runtime or TensorRT, batched across requests) and packed per image; vLLM is handed the packed embeddings"
    )

    def components(self, name: str) -> LlavaNextComponents:
        return llava_next_components(name)

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
            qdq=options.qdq,
        )
