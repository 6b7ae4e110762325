"""Qwen2-VL (``Qwen2VLForConditionalGeneration``): each image is resized to multiples of 28 pixels within the
checkpoint's ``[min_pixels, max_pixels]`` (``smart_resize``), cut into 14-pixel patches that the vision tower merges
2 x 2, so an image costs ``(H' / 28) * (W' / 28)`` tokens; the language model places them with three-axis M-RoPE.
Served with vLLM encoding the images (its own processor and vision tower), behind the same contract as LLaVA."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, FeedMaker
from export.families.qwen2_vl.spec import FAMILY, qwen2_vl_models
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent

MAX_ASPECT_RATIO = 200  # Qwen2VLImageProcessor refuses a longer side over 200 times the shorter


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize target (transformers' ``smart_resize``): both sides multiples of ``factor``, the area within
    ``[min_pixels, max_pixels]``, the aspect ratio kept as closely as that allows."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"image aspect ratio must be at most {MAX_ASPECT_RATIO}, got {height} x {width}")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@lru_cache(maxsize=4)
def _pixel_budget(checkpoint: str) -> tuple[int, int, int]:
    """(factor, min_pixels, max_pixels) of the checkpoint's image processor."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(checkpoint, backend="pil")
    factor = processor.patch_size * processor.merge_size
    return factor, processor.size["shortest_edge"], processor.size["longest_edge"]


class Qwen2VLFamily:
    name: str = FAMILY
    architectures: tuple[str, ...] = ("Qwen2VLForConditionalGeneration",)
    model_types: tuple[str, ...] = ("qwen2_vl",)
    checked_in: bool = False
    decoder_inputs: tuple[str, ...] = ("pixels", "image_sizes")
    image_encoding: str = (
        "encoded by vLLM inside the decoder (its Qwen2-VL processor resizes them within the checkpoint's pixel budget "
        "and its vision tower encodes them); the preprocess step decodes and bounds them as for LLaVA"
    )

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return qwen2_vl_models(options.named(self.name))

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        return ()

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        return {}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        return []

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """``(H' / 28) * (W' / 28)`` after ``smart_resize`` within the checkpoint's (the config's folder's) budget."""
        factor, min_pixels, max_pixels = _pixel_budget(config.name_or_path)
        resized_height, resized_width = smart_resize(height, width, factor, min_pixels, max_pixels)
        return (resized_height // factor) * (resized_width // factor)

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.qwen2_vl.exporter import export_qwen2_vl

        if options.fuse_projector:
            raise ValueError("--fuse-projector: a Qwen2-VL checkpoint's merger runs inside vLLM, not exported")
        if options.precision != ExportOptions.precision:
            raise ValueError(
                f"--precision {options.precision}: a Qwen2-VL checkpoint has no exported encoder to run at it"
            )
        export_qwen2_vl(checkpoint, repository, options.named(self.name))
        return []
