"""vlm-bench plan on a recorded report (tests/data/clip-image-report.json: a real vlm-bench clip-image run on
tiny-clip, 2 cores, closed-loop concurrency 1-8 and Poisson 20 and 80 requests/s)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.cli import main as vlm_bench
from benchmarks.plan import plan

REPORT = Path(__file__).resolve().parents[1] / "data" / "clip-image-report.json"


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads(REPORT.read_text())


def point(report: dict, mode: str, value: float) -> dict:
    return next(p for p in report["points"] if p["mode"] == mode and p["value"] == value)


def test_capacity_is_the_best_throughput_among_points_within_the_slo(report: dict) -> None:
    slo = point(report, "concurrency", 2)["metrics"]["request_latency"]["p99"] + 0.1
    within = [
        p["metrics"]["request_throughput"]["avg"]
        for p in report["points"]
        if p["metrics"]["request_latency"]["p99"] <= slo
    ]
    result = plan(report, target_rps=1000, slo_ms=slo, headroom=0.3, slo_metric="request_latency")
    assert result.capacity_rps == max(within)
    assert result.planned_rps == pytest.approx(max(within) * 0.7)
    assert result.replicas == math.ceil(1000 / (max(within) * 0.7))
    assert [p.within_slo for p in result.points] == [
        p["metrics"]["request_latency"]["p99"] <= slo for p in report["points"]
    ]


def test_a_looser_slo_never_needs_more_replicas(report: dict) -> None:
    counts = [plan(report, 1000, slo, 0.3, "request_latency").replicas for slo in (60, 100, 200, 400)]
    assert all(c is not None for c in counts)
    assert counts == sorted(counts, reverse=True)


def test_more_headroom_or_a_higher_rate_needs_more_replicas(report: dict) -> None:
    base = plan(report, 500, 400, 0.2, "request_latency").replicas
    assert plan(report, 500, 400, 0.5, "request_latency").replicas >= base
    assert plan(report, 2000, 400, 0.2, "request_latency").replicas > base
    assert plan(report, 1, 400, 0.2, "request_latency").replicas == 1


def test_an_slo_no_point_meets_says_so_instead_of_a_count(report: dict) -> None:
    fastest = min(p["metrics"]["request_latency"]["p99"] for p in report["points"])
    result = plan(report, 100, fastest / 2, 0.3, "request_latency")
    assert result.replicas is None and result.capacity_rps is None
    assert f"the lowest p99 was {fastest:.1f} ms" in result.summary()


def test_a_generation_metric_asked_of_an_encoder_report_is_refused_by_name(report: dict) -> None:
    with pytest.raises(ValueError, match="no time_to_first_token p99"):
        plan(report, 100, 100, 0.3, "time_to_first_token")


@pytest.mark.parametrize(("rate", "slo", "headroom"), [(0, 100, 0.3), (10, -1, 0.3), (10, 100, 1.0)])
def test_bad_arguments_are_refused(report: dict, rate: float, slo: float, headroom: float) -> None:
    with pytest.raises(ValueError):
        plan(report, rate, slo, headroom, "request_latency")


def test_the_cli_prints_the_plan_and_exits_by_whether_the_slo_can_be_met(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert vlm_bench(["plan", str(REPORT), "--target-rps", "300", "--slo-ms", "400", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["replicas"] >= 1 and printed["benchmark"] == "clip-image"
    assert vlm_bench(["plan", str(REPORT), "--target-rps", "300", "--slo-ms", "0.001"]) == 1
    assert "No measured point meets the SLO" in capsys.readouterr().out
    assert vlm_bench(["plan", str(REPORT.with_name("missing.json")), "--target-rps", "3", "--slo-ms", "9"]) == 2
