"""The load generator's windows, on a workload that only takes time (no server: what is checked is how
completions are counted into windows)."""

from __future__ import annotations

import time

import pytest

from benchmarks.load import LoadPoint, WindowSettings, measure_point
from benchmarks.workloads import Payload, Sample, Workload

pytestmark = pytest.mark.timeout(60)


class _Sleeps(Workload):
    name = "sleeps"

    def send(self, n: int) -> Sample:
        start = time.perf_counter()
        time.sleep(0.01)
        return Sample(start, time.perf_counter())


def _measure(point: LoadPoint, window_requests: int) -> list[int]:
    settings = WindowSettings(window_s=0.05, window_requests=window_requests, max_windows=3, warmup_requests=0)
    result = measure_point(_Sleeps("unused", "grpc", Payload()), point, settings, progress=lambda message: None)
    return [len(window.samples) for window in result.windows]


def test_a_closed_loop_window_holds_the_window_requests_of_every_client() -> None:
    # 8 clients at 10 ms a request complete ~40 requests in the 0.05 s floor; 10 per client needs ~0.1 s.
    assert min(_measure(LoadPoint("concurrency", 8), window_requests=10)) >= 80


def test_a_single_client_window_holds_the_window_requests() -> None:
    assert min(_measure(LoadPoint("concurrency", 1), window_requests=10)) >= 10
