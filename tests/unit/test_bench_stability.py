"""benchmarks.stability: perf_analyzer's rule over the last three measurement windows."""

from __future__ import annotations

import pytest

from benchmarks.stability import WindowResult, is_stable, within


def windows(*pairs: tuple[float, float]) -> list[WindowResult]:
    return [WindowResult(throughput, latency) for throughput, latency in pairs]


def test_three_windows_within_the_percentage_are_stable() -> None:
    assert is_stable(windows((100, 0.010), (104, 0.0102), (97, 0.0099)), percent=5)


def test_fewer_than_three_windows_are_never_stable() -> None:
    assert not is_stable(windows((100, 0.01), (100, 0.01)), percent=10)


def test_only_the_last_three_windows_count() -> None:
    assert is_stable(windows((10, 1.0), (100, 0.01), (101, 0.01), (99, 0.01)), percent=5)


@pytest.mark.parametrize(
    "series",
    [
        ((100, 0.010), (100, 0.010), (130, 0.010)),  # throughput jumps
        ((100, 0.010), (100, 0.010), (100, 0.014)),  # latency jumps
        ((0, 0.0), (0, 0.0), (0, 0.0)),  # nothing completed
    ],
)
def test_a_window_outside_the_percentage_or_an_empty_one_is_not_stable(series: tuple) -> None:
    assert not is_stable(windows(*series), percent=10)


def test_within_measures_each_value_against_the_mean() -> None:
    assert within([90, 100, 110], 10)  # mean 100: 90 and 110 are exactly 10 % off
    assert not within([89, 100, 111], 10)
