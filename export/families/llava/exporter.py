"""LLaVA export: the vision tower (the hidden layer(s) and feature selection the checkpoint's config names)
and the multimodal projector to ONNX, separately or fused, each checked against PyTorch; the image
processor for ``llava_preprocess``; and a link from ``llava_decoder`` to the checkpoint, whose language
model and tokenizer the decoder loads in place (nothing gigabyte-sized is copied).

Only the vision tower's and projector's weights are read, so exporting a 7B checkpoint needs memory for
those alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoImageProcessor, CLIPVisionModel
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from export.components import export_encoder, install
from export.families.base import Feeds
from export.families.llava.spec import CHECKPOINT_LINK, ENSEMBLE, LLAVA, LlavaComponents, llava_components
from export.families.measured import Feed, MeasuredComponent, pixel_feed
from export.onnx_export import DEFAULT_OPSET
from export.parity import ParityReport
from export.precision import DEFAULT_PRECISION
from serving.generation.checkpoint import image_tokens_per_image, require_all_weights
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR

VISION_KEYS = {r"^vision_tower\.": "", r"^model\.vision_tower\.": ""}
PROJECTOR_PREFIXES = ("multi_modal_projector.", "model.multi_modal_projector.")


class VisionFeatures(torch.nn.Module):
    """pixel_values -> the image features LLaVA feeds its projector (or, with ``projector``, the embeddings)."""

    def __init__(
        self,
        vision_tower: CLIPVisionModel,
        feature_layer: int | list[int],
        select_strategy: str,
        projector: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.vision_tower = vision_tower
        self.feature_layers = [feature_layer] if isinstance(feature_layer, int) else list(feature_layer)
        self.drop_cls = select_strategy == "default"
        self.projector = projector

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden_states = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        selected = [hidden_states[layer] for layer in self.feature_layers]
        if self.drop_cls:
            selected = [h[:, 1:] for h in selected]
        features = torch.cat(selected, dim=-1)
        return features if self.projector is None else self.projector(features)


def safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return [folder / "model.safetensors"]


def load_projector(folder: Path, config: Any) -> LlavaMultiModalProjector:
    state: dict[str, torch.Tensor] = {}
    for path in safetensors_files(folder):
        with safe_open(str(path), framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                for prefix in PROJECTOR_PREFIXES:
                    if key.startswith(prefix):
                        state[key.removeprefix(prefix)] = weights.get_tensor(key).float()
    projector = LlavaMultiModalProjector(config)
    projector.load_state_dict(state, strict=True)
    return projector.eval()


def load_vision_tower(folder: Path, config: Any) -> CLIPVisionModel:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the language model's weights are skipped on purpose: no load report
    model, loading = CLIPVisionModel.from_pretrained(
        folder, config=config.vision_config, key_mapping=VISION_KEYS, dtype=torch.float32, output_loading_info=True
    )
    require_all_weights(loading, "vision tower")
    return model.eval()


def llava_sizes(config: Any, projector: LlavaMultiModalProjector) -> dict[str, int]:
    return {
        "image_size": config.vision_config.image_size,
        "image_tokens": image_tokens_per_image(config),
        "vision_hidden": projector.linear_1.in_features,
        "text_hidden": config.text_config.hidden_size,
    }


def _pixel_feeds(image_size: int, batch_sizes: tuple[int, ...]) -> Feeds:
    generator = np.random.default_rng(0)
    return [
        {"pixel_values": generator.standard_normal((n, 3, image_size, image_size)).astype(np.float32)}
        for n in batch_sizes
    ]


def _feature_feeds(vision: VisionFeatures, pixel_feeds: Feeds) -> Feeds:
    """The projector is checked on real vision features, not noise of the wrong scale."""
    with torch.inference_mode():
        return [{"image_features": vision(torch.from_numpy(f["pixel_values"])).numpy()} for f in pixel_feeds]


def measured_components(checkpoint: Path, device: Any, components: LlavaComponents = LLAVA) -> list[MeasuredComponent]:
    """The vision tower and the projector as exported unfused, for the GPU check (export/families/measured.py)."""
    config = AutoConfig.from_pretrained(checkpoint)
    projector = load_projector(checkpoint, config).to(device)
    tower = load_vision_tower(checkpoint, config)
    vision = VisionFeatures(tower, config.vision_feature_layer, config.vision_feature_select_strategy).to(device)
    vision_spec, projector_spec = components.vision, components.projector
    pixels = pixel_feed(vision_spec, llava_sizes(config, projector), device)

    def features(n: int) -> Feed:
        """The projector is measured on real vision features (float32), as the export checks it."""
        with torch.inference_mode():
            return {projector_spec.inputs[0].name: vision(**pixels(n))}

    return [
        MeasuredComponent(vision_spec, vision, "images", pixels, pixels),
        MeasuredComponent(projector_spec, projector, "images", features, features),
    ]


def check_servable(config: Any) -> None:
    """Refuses, before any export work, a checkpoint the decoder's engine cannot load."""
    if not isinstance(config.vision_feature_layer, int):
        # vLLM 0.32 sizes LLaVA's projector for one layer's features; such a checkpoint fails at engine start.
        raise ValueError(
            f"vision_feature_layer: {config.vision_feature_layer} concatenates several vision layers, which the "
            "vLLM decoder cannot load (it takes a single layer)"
        )


def export_llava(
    checkpoint: Path,
    repository: Path,
    fuse_projector: bool = False,
    opset: int = DEFAULT_OPSET,
    name: str = ENSEMBLE,
    precision: str = DEFAULT_PRECISION,
    qdq: str | None = None,
    components_of: Callable[[str], LlavaComponents] = llava_components,
    extra: Callable[[Path, Any, Path, LlavaComponents], None] | None = None,
) -> list[ParityReport]:
    """Export into ``repository``, named ``name``; like the CLIP export, the repository changes only if every check
    passes. A checkpoint the decoder cannot serve raises ``ValueError`` before anything is exported. Another
    LLaVA-style family passes its models (``components_of``) and writes its own artifacts into the staging folder
    once every check passed (``extra(checkpoint, config, staging, components)``)."""
    # Here, not at the top: the configs need tritonclient, which the GPU check's machine lacks.
    from export.repository import VERSION, write_repository

    checkpoint = checkpoint.resolve()
    config = AutoConfig.from_pretrained(checkpoint)
    check_servable(config)
    projector = load_projector(checkpoint, config)
    vision_tower = load_vision_tower(checkpoint, config)
    sizes = llava_sizes(config, projector)
    features = VisionFeatures(vision_tower, config.vision_feature_layer, config.vision_feature_select_strategy)
    components = components_of(name)
    pixels = _pixel_feeds(sizes["image_size"], components.vision.parity_batch_sizes)
    models = components.models(fuse_projector)
    vision_spec = components.vision_fused if fuse_projector else components.vision
    projector_spec = components.projector
    with tempfile.TemporaryDirectory(prefix="vlm-export-") as scratch:
        staging = Path(scratch)
        if fuse_projector:
            fused = VisionFeatures(
                vision_tower, config.vision_feature_layer, config.vision_feature_select_strategy, projector
            )
            reports = export_encoder(
                fused, vision_spec, pixels, sizes, staging / vision_spec.name, opset, precision, qdq
            )
        else:
            reports = [
                *export_encoder(
                    features, vision_spec, pixels, sizes, staging / vision_spec.name, opset, precision, qdq
                ),
                *export_encoder(
                    projector,
                    projector_spec,
                    _feature_feeds(features, pixels),
                    sizes,
                    staging / projector_spec.name,
                    opset,
                    precision,
                    qdq,
                ),
            ]
        if not all(report.passed for report in reports):
            return reports
        image_processor = AutoImageProcessor.from_pretrained(checkpoint, backend="pil")
        image_processor.save_pretrained(staging / components.preprocess.name / IMAGE_PROCESSOR_DIR)
        decoder = staging / components.decoder.name
        decoder.mkdir()
        os.symlink(checkpoint, decoder / CHECKPOINT_LINK, target_is_directory=True)
        if extra is not None:
            extra(checkpoint, config, staging, components)
        if fuse_projector:
            shutil.rmtree(repository / projector_spec.name, ignore_errors=True)
        write_repository(repository, models, precision)
        for component in staging.iterdir():
            install(component, repository / component.name / VERSION)
    return reports
