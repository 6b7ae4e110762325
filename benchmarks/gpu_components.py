"""The encoders and projectors ``vlm-export`` exports, as the GPU check measures them: the same modules the export
wraps for ONNX (so the figures are for the computation that is served), their specs, and inputs shaped by them.

Imports torch, transformers and numpy only (no tritonclient, vLLM or onnxruntime-gpu): it runs where the project is
not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, CLIPModel

from export.families.clip.exporter import TextEncoder, VisionEncoder
from export.families.clip.spec import CLIP_TEXT, CLIP_VISION
from export.families.dual_encoder import PARITY_SENTENCES, SEQUENCE
from export.families.llava.exporter import VisionFeatures, llava_sizes, load_projector, load_vision_tower
from export.families.llava.spec import LLAVA_PROJECTOR, LLAVA_VISION
from export.specs import OnnxComponentSpec

Feed = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Component:
    spec: OnnxComponentSpec
    module: torch.nn.Module  # float32, on the device
    unit: str  # what one batch item is: "images" or "texts"
    parity_feed: Callable[[int], Feed]  # n inputs on the device, varied as the export's parity checks vary them
    load_feed: Callable[[int], Feed]  # n inputs on the device as throughput is measured on them


def _pixels(spec: OnnxComponentSpec, sizes: dict[str, int], device: torch.device) -> Callable[[int], Feed]:
    """Standard-normal pixel values, as the export's parity checks use, seeded per batch size."""
    tensor = spec.inputs[0]

    def feed(n: int) -> Feed:
        generator = torch.Generator().manual_seed(n)
        return {tensor.name: torch.randn((n, *tensor.resolve(sizes)), generator=generator).to(device)}

    return feed


def clip_components(checkpoint: Path, device: torch.device) -> list[Component]:
    model = CLIPModel.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    context_length = min(tokenizer.model_max_length, model.config.text_config.max_position_embeddings)
    sizes = {"image_size": model.config.vision_config.image_size, "context_length": context_length}
    _, typical_tokens, _ = CLIP_TEXT.axis(SEQUENCE).resolve(sizes)

    def texts(n: int, **padding: object) -> Feed:
        captions = [PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(n)]
        encoded = tokenizer(captions, truncation=True, return_tensors="pt", **padding)
        return {name: encoded[name].to(device) for name in ("input_ids", "attention_mask")}

    pixels = _pixels(CLIP_VISION, sizes, device)
    return [
        Component(CLIP_VISION, VisionEncoder(model).to(device), "images", pixels, pixels),
        Component(
            CLIP_TEXT,
            TextEncoder(model).to(device),
            "texts",
            # Padded to each batch's longest, up to the whole context, as the export checks the dynamic axis.
            lambda n: texts(n, padding="longest", max_length=context_length),
            # At the length the spec calls typical (what TensorRT tunes for), every text that long.
            lambda n: texts(n, padding="max_length", max_length=typical_tokens),
        ),
    ]


def llava_components(checkpoint: Path, device: torch.device) -> list[Component]:
    config = AutoConfig.from_pretrained(checkpoint)
    projector = load_projector(checkpoint, config).to(device)
    tower = load_vision_tower(checkpoint, config)
    vision = VisionFeatures(tower, config.vision_feature_layer, config.vision_feature_select_strategy).to(device)
    pixels = _pixels(LLAVA_VISION, llava_sizes(config, projector), device)

    def features(n: int) -> Feed:
        """The projector is measured on real vision features (float32), as the export checks it."""
        with torch.inference_mode():
            return {LLAVA_PROJECTOR.inputs[0].name: vision(**pixels(n))}

    return [
        Component(LLAVA_VISION, vision, "images", pixels, pixels),
        Component(LLAVA_PROJECTOR, projector, "images", features, features),
    ]


# By the checkpoint's model_type. The family registry (export/, in progress) will own this table.
FAMILIES: dict[str, Callable[[Path, torch.device], list[Component]]] = {
    "clip": clip_components,
    "llava": llava_components,
}


def components(checkpoint: Path, device: torch.device) -> list[Component]:
    model_type = AutoConfig.from_pretrained(checkpoint).model_type
    if model_type not in FAMILIES:
        raise ValueError(f"{checkpoint.name}: no exported encoders known for model_type {model_type!r}")
    return FAMILIES[model_type](checkpoint, device)
