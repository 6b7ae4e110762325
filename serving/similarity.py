"""CLIP's image-text scores: logits = exp(logit_scale) * cos(image, text); softmax over the texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIMILARITY_FILE = "similarity.json"


def write_logit_scale(folder: Path, logit_scale: float) -> Path:
    """``logit_scale`` is the checkpoint's exp(logit_scale) multiplier."""
    path = folder / SIMILARITY_FILE
    path.write_text(json.dumps({"logit_scale": logit_scale}) + "\n")
    return path


def read_logit_scale(folder: Path) -> float:
    return float(json.loads((folder / SIMILARITY_FILE).read_text())["logit_scale"])


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def image_text_scores(image_embeds: np.ndarray, text_embeds: np.ndarray, logit_scale: float) -> dict[str, np.ndarray]:
    """Embeddings are L2-normalised already (the encoders normalise inside the graph)."""
    logits = (logit_scale * image_embeds.astype(np.float32) @ text_embeds.astype(np.float32).T).astype(np.float32)
    return {"logits_per_image": logits, "probs": softmax(logits, axis=1).astype(np.float32)}
