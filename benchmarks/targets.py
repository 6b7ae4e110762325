"""The issue's targets, checked against a report: each a ratio of a served figure to a baseline's, measured in every
alternation of the run (served windows, then baseline windows, A/B/A/B) and judged on the median over them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


def rounds_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's alternations (a report without them counts as one, its pooled figures)."""
    return report.get("rounds") or [{"points": report["points"], "baselines": report["baselines"]}]


def served_figure(points: list[dict[str, Any]], mode: str, value: float, metric: str, field: str) -> float | None:
    for point in points:
        if point["mode"] == mode and point["value"] == value and metric in point["metrics"]:
            return point["metrics"][metric][field]
    return None


def baseline_figure(baselines: list[dict[str, Any]], name: str, metric: str, field: str) -> float | None:
    for baseline in baselines:
        if baseline["name"] == name and metric in baseline["metrics"]:
            return baseline["metrics"][metric][field]
    return None


def round_ratios(
    report: dict[str, Any], mode: str, value: float, metric: str, field: str, baseline: str
) -> list[float]:
    """served / baseline in each alternation where both were measured."""
    ratios = []
    for round_ in rounds_of(report):
        served = served_figure(round_["points"], mode, value, metric, field)
        base = baseline_figure(round_["baselines"], baseline, metric, field)
        if served is not None and base:
            ratios.append(served / base)
    return ratios


def spread(ratios: list[float]) -> dict[str, Any]:
    """The median over the alternations (the figure a target is judged on) and how far they spread."""
    if not ratios:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "values": ratios}


@dataclass(frozen=True)
class Target:
    benchmark: str
    description: str
    concurrency: int
    metric: str
    field: str
    baseline: str  # "huggingface" or "limit"
    bound: float
    at_least: bool  # True: served / baseline >= bound; False: <= bound
    conditions: tuple[tuple[str, Any], ...] = ()  # input_config entries the target is defined for

    def meets(self, ratio: float) -> bool:
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    def check(self, report: dict[str, Any]) -> dict[str, Any]:
        relation = ">=" if self.at_least else "<="
        result: dict[str, Any] = {
            "target": self.description,
            "requirement": f"served / {self.baseline} {relation} {self.bound:g}",
            "measured": None,
            "met": None,
        }
        config = report["input_config"]
        unmet = [f"{key}={value}" for key, value in self.conditions if config.get(key) != value]
        ratios = round_ratios(report, "concurrency", self.concurrency, self.metric, self.field, self.baseline)
        if unmet or not ratios:
            needs = unmet or [f"concurrency {self.concurrency} and the {self.baseline} baseline"]
            result["note"] = "not measured in this run (needs " + ", ".join(needs) + ")"
            return result
        figures = spread(ratios)
        result.update(
            measured=figures["median"],
            spread=[figures["min"], figures["max"]],
            alternations=len(ratios),
            met=self.meets(figures["median"]),
            met_in_every_alternation=all(self.meets(ratio) for ratio in ratios),
        )
        return result


def _vs_limit(benchmark: str, description: str, metric: str, conditions: tuple[tuple[str, Any], ...] = ()) -> Target:
    """Every served path: at least 0.8 of what the same models reach in-process at their best batch."""
    description = f"{description}, concurrency 8: {metric} vs the in-process limit"
    return Target(benchmark, description, 8, metric, "avg", "limit", 0.8, True, conditions)


TARGETS = (
    Target(
        "clip-text",
        "CLIP text embeddings, concurrency 8: request throughput vs Hugging Face one at a time",
        8,
        "request_throughput",
        "avg",
        "huggingface",
        1.5,
        True,
    ),
    _vs_limit("clip-text", "CLIP text embeddings", "request_throughput"),
    Target(
        "clip-rank",
        "CLIP ranking (1 image x 8 texts), concurrency 8: image throughput vs Hugging Face one at a time",
        8,
        "image_throughput",
        "avg",
        "huggingface",
        1.5,
        True,
    ),
    _vs_limit("clip-rank", "CLIP ranking", "image_throughput"),
    Target(
        "clip-image",
        "CLIP image embeddings, concurrency 8, gRPC, JPEG: image throughput vs Hugging Face one at a time",
        8,
        "image_throughput",
        "avg",
        "huggingface",
        2.0,
        True,
        (("protocol", "grpc"), ("image_format", "jpeg")),
    ),
    _vs_limit(
        "clip-image",
        "CLIP image embeddings, gRPC, JPEG",
        "image_throughput",
        (("protocol", "grpc"), ("image_format", "jpeg")),
    ),
    Target(
        "llava",
        "LLaVA, concurrency 8, 64 output tokens: output token throughput vs sequential Hugging Face generate",
        8,
        "output_token_throughput",
        "avg",
        "huggingface",
        3.5,
        True,
        (("output_tokens", 64),),
    ),
    _vs_limit("llava", "LLaVA output tokens/s", "output_token_throughput"),
    Target(
        "llava",
        "LLaVA, concurrency 1: time to first token p50 vs in-process Hugging Face",
        1,
        "time_to_first_token",
        "p50",
        "huggingface",
        1.3,
        False,
    ),
)


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [target.check(report) for target in TARGETS if target.benchmark == report["benchmark"]]
