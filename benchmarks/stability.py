"""perf_analyzer's stability rule: the last windows' throughput and latency each within a percentage of their mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STABLE_WINDOWS = 3  # perf_analyzer compares the last three measurement windows


@dataclass(frozen=True)
class WindowResult:
    throughput: float  # completed requests per second
    latency_s: float  # mean request latency over the window


def within(values: Sequence[float], percent: float) -> bool:
    """Every value within ``percent`` % of the values' mean."""
    mean = sum(values) / len(values)
    if mean == 0:
        return all(value == 0 for value in values)
    return all(abs(value - mean) <= mean * percent / 100 for value in values)


def is_stable(windows: Sequence[WindowResult], percent: float, count: int = STABLE_WINDOWS) -> bool:
    """True once the last ``count`` windows agree within ``percent`` % on both throughput and latency."""
    if len(windows) < count:
        return False
    last = windows[-count:]
    if any(window.throughput == 0 for window in last):
        return False  # a window that completed nothing measured nothing
    return within([w.throughput for w in last], percent) and within([w.latency_s for w in last], percent)
