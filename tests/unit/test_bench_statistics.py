"""benchmarks.statistics: genai-perf's summary fields, checked against numpy on known data."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.statistics import FIELDS, summarize


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0, 3.0, 4.0], list(np.random.default_rng(7).exponential(20, 501))])
def test_percentiles_mean_and_std_match_numpy(values: list[float]) -> None:
    summary = summarize(values, "ms")
    assert summary["unit"] == "ms"
    assert summary["avg"] == pytest.approx(np.mean(values))
    assert summary["std"] == pytest.approx(np.std(values))
    assert (summary["min"], summary["max"]) == (min(values), max(values))
    for p in (50, 90, 95, 99):
        assert summary[f"p{p}"] == pytest.approx(np.percentile(values, p))


def test_percentiles_interpolate_between_known_values() -> None:
    summary = summarize(list(range(1, 101)), "ms")  # 1..100
    assert (summary["p50"], summary["p90"], summary["p99"]) == pytest.approx((50.5, 90.1, 99.01))
    assert summary["std"] == pytest.approx(28.866070047722118)


def test_no_values_give_every_field_as_none() -> None:
    summary = summarize([], "tokens/sec")
    assert summary == {"unit": "tokens/sec", **dict.fromkeys(FIELDS)}
