"""Summary statistics with genai-perf's fields: avg, std, min, max and numpy percentiles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
FIELDS = ("avg", "std", "min", "max", *(f"p{p}" for p in PERCENTILES))


def summarize(values: Sequence[float], unit: str) -> dict[str, float | str | None]:
    """``{"unit", "avg", "std", "min", "max", "p50", "p90", "p95", "p99"}``; every field None without values.

    ``std`` is the population standard deviation and percentiles interpolate linearly (numpy's defaults),
    as genai-perf computes them.
    """
    if not len(values):
        return {"unit": unit, **dict.fromkeys(FIELDS)}
    array = np.asarray(values, dtype=np.float64)
    summary: dict[str, float | str | None] = {
        "unit": unit,
        "avg": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
    }
    for percentile, value in zip(PERCENTILES, np.percentile(array, PERCENTILES), strict=True):
        summary[f"p{percentile}"] = float(value)
    return summary
