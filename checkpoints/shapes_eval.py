"""Zero-shot scores on the shapes world's held-out split: in process here, through a server elsewhere.

The scoring takes any ``probs(image, prompts)`` callable, so a served evaluation reuses it unchanged;
torch and transformers are imported only by the in-process scorer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from checkpoints.shapes_world import COLOURS, KINDS, Sample, colour_prompts, make_dataset, shape_prompts

Probabilities = Callable[[Image.Image, list[str]], list[float]]
HELD_OUT_SEED = 0


def held_out_single_shapes(count: int, image_size: int, seed: int = HELD_OUT_SEED) -> list[Sample]:
    """The evaluation images: drawn at the model's own input size, as resizing would blur them."""
    return make_dataset("held-out", count, seed, image_size, shape_counts=(1,))


def image_size(checkpoint: Path) -> int:
    """The vision tower's input size, from a CLIP or LLaVA checkpoint's config."""
    return json.loads((checkpoint / "config.json").read_text())["vision_config"]["image_size"]


def best(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


def zero_shot_scores(samples: Sequence[Sample], probs: Probabilities) -> dict[str, float | int]:
    """Colour and shape accuracy of picking the best prompt for each single-shape sample."""
    colours, kinds = colour_prompts(), shape_prompts()
    colour_right = shape_right = 0
    for sample in samples:
        (shape,) = sample.scene.shapes
        colour_right += list(COLOURS)[best(probs(sample.image, colours))] == shape.colour
        shape_right += KINDS[best(probs(sample.image, kinds))] == shape.kind
    count = len(samples)
    return {
        "count": count,
        "colour_correct": colour_right,
        "shape_correct": shape_right,
        "colour_accuracy": colour_right / count,
        "shape_accuracy": shape_right / count,
    }


def clip_probabilities(checkpoint: Path) -> Probabilities:
    """``probs`` from a Hugging Face CLIP checkpoint, computed in this process."""
    import torch
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses
    text_embeds: dict[tuple[str, ...], torch.Tensor] = {}  # the same few prompt lists, for every image

    @torch.inference_mode()
    def probs(image: Image.Image, prompts: list[str]) -> list[float]:
        key = tuple(prompts)
        if key not in text_embeds:
            tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt")
            embeds = model.get_text_features(**tokens).pooler_output
            text_embeds[key] = embeds / embeds.norm(dim=-1, keepdim=True)
        pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        image_embed = model.get_image_features(pixel_values=pixels).pooler_output
        image_embed = image_embed / image_embed.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * image_embed @ text_embeds[key].t()
        return logits.softmax(dim=-1)[0].tolist()

    return probs


def evaluate_clip(checkpoint: Path, count: int) -> dict[str, float | int]:
    """Zero-shot colour and shape accuracy of a CLIP checkpoint on ``count`` held-out single-shape images."""
    return zero_shot_scores(held_out_single_shapes(count, image_size(checkpoint)), clip_probabilities(checkpoint))


def served_probabilities(url: str, protocol: str, model: str | None = None) -> Probabilities:
    """``probs`` through the rank ensemble of the dual encoder served as ``model`` (default ``clip``: ``clip_rank``),
    with the thin client (no torch)."""
    from client import VLMClient

    client = VLMClient(url, protocol=protocol, embedding_model=model)

    def probs(image: Image.Image, prompts: list[str]) -> list[float]:
        return client.rank_texts([image], prompts)["probs"][0].tolist()

    return probs


def evaluate_served_clip(
    checkpoint: Path, count: int, url: str, protocol: str, model: str | None = None
) -> dict[str, float | int]:
    """The same held-out images and prompts as ``evaluate_clip``, scored by the served export of ``checkpoint`` (the
    model served as ``model``; default ``clip``)."""
    probabilities = served_probabilities(url, protocol, model)
    return zero_shot_scores(held_out_single_shapes(count, image_size(checkpoint)), probabilities)
