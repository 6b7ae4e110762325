"""Qwen2-VL (``Qwen2VLForConditionalGeneration``): each image is resized to multiples of 28 pixels within the
checkpoint's ``[min_pixels, max_pixels]`` (``smart_resize``), cut into 14-pixel patches that the vision tower merges
2 x 2, so an image costs ``(H' / 28) * (W' / 28)`` tokens; the language model places them with three-axis M-RoPE.
The tower is exported (``tower.py``, ``exporter.py``); vLLM gets the embeddings and grids (``spec.py``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.families.base import ExportOptions, WithoutEngineEncoders
from export.families.qwen2_vl.spec import FAMILY, qwen2_vl_models
from export.parity import ParityReport
from export.specs import ModelSpec
from serving.smart_resize import PatchSettings

if TYPE_CHECKING:
    from export.families.measured import MeasuredComponent


@lru_cache(maxsize=4)
def _patch_settings(checkpoint: str) -> PatchSettings:
    return PatchSettings.read(Path(checkpoint))


class Qwen2VLFamily(WithoutEngineEncoders):
    name: str = FAMILY
    architectures: tuple[str, ...] = ("Qwen2VLForConditionalGeneration",)
    model_types: tuple[str, ...] = ("qwen2_vl",)
    checked_in: bool = False
    decoder_inputs: tuple[str, ...] = ("image_embeds", "image_grid_thw")
    image_encoding: str = (
        "resized within the checkpoint's pixel budget and cut into patches by its preprocess step, encoded by the "
        "exported vision tower and patch merger (ONNX Runtime, an image a call); vLLM is handed the "
        "embeddings and each image's grid"
    )

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        return qwen2_vl_models(options.named(self.name))

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        """The vision tower with its patch merger (a python step's ONNX graph, so no encoder variant)."""
        from export.families.qwen2_vl.measured import tower_component

        _, vision, _, _ = self.models(ExportOptions())
        return [tower_component(checkpoint, device, vision.name, self.vision_class())]

    def vision_class(self) -> Any:
        """The tower's transformers class; None: Qwen2-VL's."""
        return None

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """``(H' / 28) * (W' / 28)`` after ``smart_resize`` within the checkpoint's (the config's folder's) budget."""
        return _patch_settings(config.name_or_path).tokens(height, width)

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        from export.families.qwen2_vl.exporter import export_qwen2_vl

        self.check_options(options)
        return export_qwen2_vl(checkpoint, repository, options.named(self.name), options.opset)

    def check_options(self, options: ExportOptions) -> None:
        if options.fuse_projector:
            raise ValueError("--fuse-projector: a Qwen2-VL checkpoint's patch merger is always inside its vision tower")
        if options.precision != ExportOptions.precision:
            raise ValueError(f"--precision {options.precision}: Qwen2-VL's vision tower is exported at float32 only")
