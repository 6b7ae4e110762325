"""Which held-out evaluation of the shapes world fits a checkpoint, by its ``model_type``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Scores = dict[str, float | int]


@dataclass(frozen=True)
class Evaluation:
    title: str  # formatted with the held-out count
    local: Callable[[Path, int], Scores]
    served: Callable[[Path, int, str, str, str | None], Scores]  # checkpoint, count, url, protocol, served name
    columns: tuple[tuple[str, str], ...]  # (heading, score key) of the accuracies to print


def _clip() -> Evaluation:
    from checkpoints.shapes_eval import evaluate_clip, evaluate_served_clip

    columns = (("colour", "colour_accuracy"), ("shape", "shape_accuracy"))
    return Evaluation("zero-shot on {} held-out single-shape images", evaluate_clip, evaluate_served_clip, columns)


def _llava() -> Evaluation:
    from checkpoints.shapes_vqa_eval import evaluate_llava, evaluate_served_llava

    columns = (("exact match", "exact_match_accuracy"), ("caption attributes", "caption_attribute_accuracy"))
    return Evaluation("questions and captions of {} held-out scenes", evaluate_llava, evaluate_served_llava, columns)


EVALUATIONS: dict[str, Callable[[], Evaluation]] = {"clip": _clip, "llava": _llava}


def evaluation_for(checkpoint: Path) -> Evaluation:
    model_type = json.loads((checkpoint / "config.json").read_text()).get("model_type")
    if model_type not in EVALUATIONS:
        raise ValueError(f"no shapes-world evaluation for model type {model_type!r}; one of: {', '.join(EVALUATIONS)}")
    return EVALUATIONS[model_type]()
