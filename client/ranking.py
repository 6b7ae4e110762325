"""Reading ``clip_rank``'s logits as a zero-shot classification or a ranking of candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_TEMPLATE = "a photo of a {}"


@dataclass(frozen=True)
class Ranked:
    index: int  # position among the candidates given
    score: float  # the model's logit: scaled cosine similarity
    probability: float  # softmax of the scores over the candidates


def classification(probs: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """label -> probability, most likely first."""
    order = np.argsort(-probs, kind="stable")
    return {labels[i]: float(probs[i]) for i in order}


def ranking(logits: np.ndarray) -> list[Ranked]:
    """Candidates best first, from one query's logits against each of them."""
    logits = np.asarray(logits, dtype=np.float64)
    weights = np.exp(logits - logits.max())
    probs = weights / weights.sum()
    order = np.argsort(-logits, kind="stable")
    return [Ranked(int(i), float(logits[i]), float(probs[i])) for i in order]
