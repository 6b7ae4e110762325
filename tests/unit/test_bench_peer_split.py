"""benchmarks.peer_split: each side's TTFT and decode, and this project's per-step split from Triton's statistics."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.metrics import compute_metrics
from benchmarks.peer_split import time_split, time_split_markdown
from benchmarks.workloads import Sample

pytestmark = pytest.mark.timeout(30)


def point(ttft_s: float, latency_s: float, split: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    samples = [Sample(i, i + latency_s, 1, i + ttft_s, 16, 300) for i in range(4)]
    metrics = compute_metrics(samples, [(0.0, 4.0 + latency_s)], images=True, generation=True)
    return {"mode": "concurrency", "value": 1, "metrics": metrics, "server_split": split or {}}


def test_each_sides_latency_is_split_into_ttft_and_decode_and_the_projects_into_its_steps() -> None:
    steps = {
        "qwen2_vl_preprocess": {"requests": 4, "average_batch": 1.0, "queue_us": 500.0, "compute_input_us": 100.0,
                                "compute_infer_us": 40_000.0, "compute_output_us": 900.0},
        "qwen2_vl_vision": {"requests": 4, "average_batch": 2.0, "queue_us": 3000.0, "compute_input_us": 0.0,
                            "compute_infer_us": 120_000.0, "compute_output_us": 0.0},
    }  # fmt: skip
    rows = time_split({"image": {"project": [point(0.3, 0.5, steps)], "peer": [point(0.2, 0.6)]}})
    (row,) = rows
    assert (row["workload"], row["mode"], row["value"]) == ("image", "concurrency", 1)
    assert row["project"] == pytest.approx({"latency_ms": 500.0, "ttft_ms": 300.0, "decode_ms": 200.0})
    assert row["peer"] == pytest.approx({"latency_ms": 600.0, "ttft_ms": 200.0, "decode_ms": 400.0})
    assert row["project_steps"]["qwen2_vl_preprocess"] == pytest.approx(
        {"queue_ms": 0.5, "compute_ms": 41.0, "average_batch": 1.0}
    )
    assert row["project_steps"]["qwen2_vl_vision"]["compute_ms"] == pytest.approx(120.0)
    text = "\n".join(time_split_markdown(rows))
    assert "| image | concurrency 1 | 300 | 200 | 200 | 400 |" in text
    assert "qwen2_vl_preprocess 0 + 41 (batch 1.0); qwen2_vl_vision 3 + 120 (batch 2.0)" in text


def test_a_point_without_statistics_or_tokens_shows_dashes() -> None:
    empty = {"mode": "request_rate", "value": 2.0, "metrics": {}, "server_split": {}}
    rows = time_split({"text": {"project": [empty], "peer": [empty]}})
    assert rows[0]["project"] == {"latency_ms": None, "ttft_ms": None, "decode_ms": None}
    assert "| text | 2 req/s | - | - | - | - | - |" in "\n".join(time_split_markdown(rows))
