"""``vlm-bench plan``: how many replicas a request rate needs at a latency SLO, from a vlm-bench report.

One served replica's capacity is the highest request throughput among the report's load points whose p99
latency (``--slo-metric``, default ``request_latency``) stays within the SLO. The plan keeps ``--headroom`` of
that unused (for bursts, a replica lost, noisy neighbours):

    replicas = ceil(target rate / (capacity * (1 - headroom)))

The report must come from one replica (``vlm-bench --serve``, or ``--url`` of a single server); measure it on
the hardware the cluster runs, with the load generator on another host when you can.

    vlm-bench plan benchmarks/results/clip-image/report.json --target-rps 200 --slo-ms 150
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SLO_METRICS = ("request_latency", "time_to_first_token", "inter_token_latency")


@dataclass(frozen=True)
class PointCapacity:
    label: str  # "concurrency 8", "5 requests/s"
    throughput: float  # requests/s
    p99_ms: float
    within_slo: bool


@dataclass(frozen=True)
class Plan:
    benchmark: str
    slo_metric: str
    slo_ms: float
    target_rps: float
    headroom: float
    points: list[PointCapacity]
    capacity_rps: float | None  # one replica at the SLO; None: no point met it
    planned_rps: float | None  # per replica, after headroom
    replicas: int | None

    def summary(self) -> str:
        lines = [
            f"{self.benchmark}: {self.target_rps:g} requests/s at p99 {self.slo_metric} <= {self.slo_ms:g} ms, "
            f"{self.headroom:.0%} headroom",
            "",
            "| load point | requests/s | p99 (ms) | within the SLO |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {p.label} | {p.throughput:.2f} | {p.p99_ms:.1f} | {'yes' if p.within_slo else 'no'} |"
            for p in self.points
        ]
        lines.append("")
        if self.replicas is None:
            fastest = min(self.points, key=lambda p: p.p99_ms)
            lines.append(
                f"No measured point meets the SLO (the lowest p99 was {fastest.p99_ms:.1f} ms at {fastest.label}): "
                "a replica cannot serve this SLO on the measured hardware, whatever the count."
            )
        else:
            lines.append(
                f"One replica sustains {self.capacity_rps:.2f} requests/s within the SLO; planned at "
                f"{self.planned_rps:.2f} with headroom: **{self.replicas} replica(s)**."
            )
        return "\n".join(lines)


def _label(point: dict[str, Any]) -> str:
    if point["mode"] == "concurrency":
        return f"concurrency {int(point['value'])}"
    return f"{point['value']:g} requests/s"


def plan(report: dict[str, Any], target_rps: float, slo_ms: float, headroom: float, slo_metric: str) -> Plan:
    if not target_rps > 0 or not slo_ms > 0:
        raise ValueError("--target-rps and --slo-ms must be greater than 0")
    if not 0 <= headroom < 1:
        raise ValueError(f"--headroom must lie in [0, 1), got {headroom}")
    points = []
    for point in report.get("points", []):
        metrics = point.get("metrics", {})
        if slo_metric not in metrics or metrics[slo_metric].get("p99") is None:
            raise ValueError(f"the report's {_label(point)} has no {slo_metric} p99 (a {report['benchmark']} report?)")
        p99 = float(metrics[slo_metric]["p99"])
        throughput = float(metrics["request_throughput"]["avg"])
        points.append(PointCapacity(_label(point), throughput, p99, p99 <= slo_ms and point.get("errors", 0) == 0))
    if not points:
        raise ValueError("the report holds no load points")
    capacity = max((p.throughput for p in points if p.within_slo), default=None)
    planned = None if capacity is None else capacity * (1 - headroom)
    replicas = None if planned is None else max(1, math.ceil(target_rps / planned))
    return Plan(report["benchmark"], slo_metric, slo_ms, target_rps, headroom, points, capacity, planned, replicas)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-bench plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, help="a vlm-bench report.json")
    parser.add_argument("--target-rps", type=float, required=True, help="the request rate the cluster must serve")
    parser.add_argument("--slo-ms", type=float, required=True, help="the p99 latency bound, in milliseconds")
    parser.add_argument("--slo-metric", choices=SLO_METRICS, default="request_latency")
    parser.add_argument("--headroom", type=float, default=0.3, help="share of a replica's capacity kept free")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
        result = plan(report, args.target_rps, args.slo_ms, args.headroom, args.slo_metric)
    except (OSError, ValueError, KeyError) as error:
        print(f"vlm-bench plan: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result), indent=2) if args.json else result.summary())
    return 0 if result.replicas is not None else 1
