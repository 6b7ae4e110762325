"""PNG plots of a report: throughput, latency percentiles and, for generation, TTFT and inter-token latency
against the load; baselines drawn as horizontal lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from benchmarks.report import PRIMARY_METRIC

PERCENTILES = ("p50", "p90", "p99")
_X_LABEL = {"concurrency": "concurrency (requests in flight)", "request_rate": "request rate (requests/s)"}


def _mode(report: dict[str, Any]) -> str:
    modes = [p["mode"] for p in report["points"]]
    return "concurrency" if "concurrency" in modes else modes[0]


def _series(report: dict[str, Any], metric: str, field: str) -> tuple[list[float], list[float]]:
    mode = _mode(report)
    points = sorted((p for p in report["points"] if p["mode"] == mode), key=lambda p: p["value"])
    return [p["value"] for p in points], [p["metrics"][metric][field] for p in points]


def _figure(report: dict[str, Any], title: str, ylabel: str) -> tuple[Any, Any]:
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.set_title(f"{report['benchmark']}: {title}")
    axes.set_xlabel(_X_LABEL[_mode(report)])
    axes.set_ylabel(ylabel)
    if _mode(report) == "concurrency":
        axes.set_xscale("log", base=2)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _save(figure: Any, axes: Any, path: Path) -> Path:
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def throughput_plot(report: dict[str, Any], out: Path) -> Path:
    metric = PRIMARY_METRIC[report["benchmark"]]
    unit = report["points"][0]["metrics"][metric]["unit"]
    figure, axes = _figure(report, metric.replace("_", " "), unit)
    axes.plot(*_series(report, metric, "avg"), marker="o", label="served")
    for style, baseline in zip(("--", ":"), report["baselines"], strict=False):
        axes.axhline(baseline["metrics"][metric]["avg"], linestyle=style, color="grey", label=baseline["name"])
    return _save(figure, axes, out / "throughput.png")


def latency_plot(report: dict[str, Any], out: Path, metric: str, name: str) -> Path:
    figure, axes = _figure(report, f"{metric.replace('_', ' ')} percentiles", "ms")
    for field in PERCENTILES:
        axes.plot(*_series(report, metric, field), marker="o", label=field)
    return _save(figure, axes, out / name)


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [throughput_plot(report, out), latency_plot(report, out, "request_latency", "latency.png")]
    if report["benchmark"] == "llava":
        paths.append(latency_plot(report, out, "time_to_first_token", "time_to_first_token.png"))
        paths.append(latency_plot(report, out, "inter_token_latency", "inter_token_latency.png"))
    return paths
