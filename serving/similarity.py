"""A dual encoder's image-text scores: logits = exp(logit_scale) * cos(image, text) + logit_bias, then a softmax
over the texts (CLIP: which caption fits) or a sigmoid per pair (SigLIP: does this caption fit, independently)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIMILARITY_FILE = "similarity.json"
SCORINGS = ("softmax", "sigmoid")


def write_logit_scale(folder: Path, logit_scale: float, logit_bias: float = 0.0) -> Path:
    """``logit_scale`` is the checkpoint's exp(logit_scale) multiplier; ``logit_bias`` is added after it."""
    path = folder / SIMILARITY_FILE
    path.write_text(json.dumps({"logit_scale": logit_scale, "logit_bias": logit_bias}) + "\n")
    return path


def read_logit_scale(folder: Path) -> float:
    return float(json.loads((folder / SIMILARITY_FILE).read_text())["logit_scale"])


def read_logit_bias(folder: Path) -> float:
    """0 for a file written before biases were recorded (CLIP has none)."""
    return float(json.loads((folder / SIMILARITY_FILE).read_text()).get("logit_bias", 0.0))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Without overflow warnings at large |logits|."""
    return np.exp(-np.logaddexp(0, -logits))


def image_text_scores(
    image_embeds: np.ndarray,
    text_embeds: np.ndarray,
    logit_scale: float,
    logit_bias: float = 0.0,
    scoring: str = "softmax",
) -> dict[str, np.ndarray]:
    """Embeddings are L2-normalised already (the encoders normalise inside the graph)."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    cosines = image_embeds.astype(np.float32) @ text_embeds.astype(np.float32).T
    logits = (np.float32(logit_scale) * cosines + np.float32(logit_bias)).astype(np.float32)
    probs = softmax(logits, axis=1) if scoring == "softmax" else sigmoid(logits)
    return {"logits_per_image": logits, "probs": probs.astype(np.float32)}
