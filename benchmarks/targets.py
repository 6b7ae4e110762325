"""The issue's targets, checked against a report: each a ratio of a served figure to a baseline's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
        served = next(
            (
                p["metrics"][self.metric][self.field]
                for p in report["points"]
                if p["mode"] == "concurrency" and p["value"] == self.concurrency and self.metric in p["metrics"]
            ),
            None,
        )
        baseline = next(
            (b["metrics"][self.metric][self.field] for b in report["baselines"] if b["name"] == self.baseline), None
        )
        if unmet or served is None or not baseline:
            needs = unmet or [f"concurrency {self.concurrency} and the {self.baseline} baseline"]
            result["note"] = "not measured in this run (needs " + ", ".join(needs) + ")"
            return result
        ratio = served / baseline
        result["measured"] = ratio
        result["met"] = ratio >= self.bound if self.at_least else ratio <= self.bound
        return result


TARGETS = (
    Target(
        "clip-image",
        "CLIP image embeddings, concurrency 8, gRPC, JPEG: image throughput vs the in-process limit",
        8,
        "image_throughput",
        "avg",
        "limit",
        0.8,
        True,
        (("protocol", "grpc"), ("image_format", "jpeg")),
    ),
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
    Target(
        "llava",
        "LLaVA, concurrency 8, 64 output tokens: output token throughput vs sequential Hugging Face generate",
        8,
        "output_token_throughput",
        "avg",
        "huggingface",
        3.0,
        True,
        (("output_tokens", 64),),
    ),
    Target(
        "llava",
        "LLaVA, concurrency 1: time to first token p50 vs in-process Hugging Face",
        1,
        "time_to_first_token",
        "p50",
        "huggingface",
        1.5,
        False,
    ),
)


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [target.check(report) for target in TARGETS if target.benchmark == report["benchmark"]]
