"""Closed-loop (fixed concurrency) and open-loop (Poisson arrivals) load, measured in windows until stable.

Load runs continuously from warm-up to the end; measurement windows are spans of wall time over it. A request
belongs to the window in which it completes (as in perf_analyzer). A window ends once it is at least
``window_s`` long and holds at least ``window_requests`` completions, in a closed loop that many per client: a
window shorter than a few request lifetimes catches a varying share of the clients' completions (bench-llava at
concurrency 8, 2 completions a window: 0.77-1.50 requests/s from one window to the next). Windows repeat until
the last three agree (``benchmarks.stability``) or ``max_windows`` is reached. The point's figures come from those
last windows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.stability import STABLE_WINDOWS, WindowResult, is_stable
from benchmarks.workloads import Sample, Workload
from client import ServerBusyError

MODES = ("concurrency", "request_rate")


@dataclass(frozen=True)
class LoadPoint:
    mode: str  # "concurrency" or "request_rate"
    value: float

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.value <= 0:
            raise ValueError(f"--{self.mode.replace('_', '-')}: must be > 0, got {self.value}")

    @property
    def label(self) -> str:
        return f"concurrency {int(self.value)}" if self.mode == "concurrency" else f"{self.value:g} requests/s"


@dataclass(frozen=True)
class WindowSettings:
    window_s: float = 2.0
    window_requests: int = 2  # completions a window needs; per client in a closed loop
    max_windows: int = 10
    stability_percent: float = 10.0
    warmup_requests: int = 4
    seed: int = 0
    max_in_flight: int = 64  # open loop: requests in flight at most

    def __post_init__(self) -> None:
        limits = {
            "--window-seconds": (self.window_s, 0.05),
            "--window-requests": (self.window_requests, 1),
            "--max-windows": (self.max_windows, STABLE_WINDOWS),
            "--stability-percent": (self.stability_percent, 0.1),
            "--warmup-requests": (self.warmup_requests, 0),
            "--max-in-flight": (self.max_in_flight, 1),
        }
        for flag, (value, least) in limits.items():
            if value < least:
                raise ValueError(f"{flag}: must be at least {least}, got {value}")


@dataclass
class Window:
    start: float
    end: float
    samples: list[Sample]
    server_stats: Any = None  # the server's cumulative statistics when the window ended

    @property
    def result(self) -> WindowResult:
        duration = self.end - self.start
        latency = sum(s.latency_s for s in self.samples) / len(self.samples) if self.samples else 0.0
        return WindowResult(len(self.samples) / duration, latency)


@dataclass
class PointResult:
    point: LoadPoint
    windows: list[Window]  # the windows the figures come from (the last STABLE_WINDOWS)
    stable: bool
    window_count: int
    errors: int
    server_stats_before: Any = None
    server_stats_after: Any = None
    first_error: str | None = None
    all_windows: list[WindowResult] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return [s for w in self.windows for s in w.samples]


class _Recorder:
    """Collects completions and errors from the load threads."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors = 0
        self.first_error: str | None = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def run(self, workload: Workload, n: int) -> None:
        begin = time.perf_counter()
        try:
            sample = workload.send(n)
        except ServerBusyError:  # refused by admission control: timed, and kept apart from the served requests
            sample = Sample(begin, time.perf_counter(), refused=True)
        except Exception as error:  # a failed request is counted and reported, never fatal to the run
            self.failed(error)
            return
        self.completed(sample)

    async def run_async(self, workload: Workload, client: Any, n: int, arrival: float) -> None:
        sent = time.perf_counter()
        try:
            sample = await workload.send_async(client, n, arrival)
        except ServerBusyError:
            sample = Sample(arrival, time.perf_counter(), refused=True)
        except Exception as error:
            self.failed(error)
            return
        self.completed(dataclasses.replace(sample, sent=sent))

    def completed(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)
            self.changed.notify_all()

    def failed(self, error: Exception) -> None:
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or str(error)
            self.changed.notify_all()

    def completed_since(self, start: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if s.end >= start]


def _closed_loop(workload: Workload, concurrency: int, recorder: _Recorder, stop: threading.Event) -> list[Any]:
    def worker() -> None:
        while not stop.is_set():
            recorder.run(workload, workload.next_request())

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    return threads


def _open_loop(
    workload: Workload, rate: float, settings: WindowSettings, recorder: _Recorder, stop: threading.Event
) -> list[Any]:
    """Poisson arrivals: exponential gaps from a seeded generator; latency counts from the arrival time, so a
    request that waits for a slot (``max_in_flight``) is charged for the wait (no coordinated omission).

    The requests run as tasks on one asyncio loop, sharing the workload's ``async_client``: a thread per request
    in flight cost the load generator so much CPU at hundreds of requests per second that arrivals were sent
    seconds late."""
    rng = np.random.default_rng(settings.seed)

    async def arrivals() -> None:
        slots = asyncio.Semaphore(settings.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()

        async def one(client: Any, n: int, arrival: float) -> None:
            async with slots:
                await recorder.run_async(workload, client, n, arrival)

        async with workload.async_client() as client:
            arrival = time.perf_counter()
            while not stop.is_set():
                arrival += rng.exponential(1.0 / rate)
                while (delay := arrival - time.perf_counter()) > 0 and not stop.is_set():
                    await asyncio.sleep(min(delay, 0.05))  # a slow rate still notices the end of the run
                if stop.is_set():
                    break
                task = asyncio.create_task(one(client, workload.next_request(), arrival))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

    thread = threading.Thread(target=asyncio.run, args=(arrivals(),), daemon=True)
    thread.start()
    return [thread]


def measure_point(
    workload: Workload,
    point: LoadPoint,
    settings: WindowSettings,
    snapshot: Callable[[], Any] = lambda: None,
    progress: Callable[[str], None] = print,
) -> PointResult:
    """Warm up, then measure windows until stable (or ``max_windows``); ``snapshot`` reads server statistics."""
    recorder, stop = _Recorder(), threading.Event()
    if point.mode == "concurrency":
        threads = _closed_loop(workload, int(point.value), recorder, stop)
    else:
        threads = _open_loop(workload, point.value, settings, recorder, stop)
    windows: list[Window] = []
    needed = settings.window_requests * (int(point.value) if point.mode == "concurrency" else 1)
    try:
        with recorder.lock:
            recorder.changed.wait_for(
                lambda: (
                    len(recorder.samples) + recorder.errors >= settings.warmup_requests
                    or (recorder.errors > 0 and not recorder.samples)
                )
            )
            if recorder.errors and not recorder.samples:
                raise RuntimeError(f"{point.label}: requests fail: {recorder.first_error}")
        start, before = time.perf_counter(), snapshot()
        stats = [before]
        while len(windows) < settings.max_windows:
            with recorder.lock:
                failed_before = recorder.errors

                def completed(start: float = start) -> int:
                    return sum(s.end >= start for s in recorder.samples)

                def failed(before: int = failed_before) -> int:
                    return recorder.errors - before

                recorder.changed.wait_for(lambda: completed() >= needed or failed() >= needed)
                if completed() < needed:
                    raise RuntimeError(f"{point.label}: requests fail: {recorder.first_error}")
            remaining = start + settings.window_s - time.perf_counter()
            if remaining > 0:
                time.sleep(remaining)
            end = time.perf_counter()
            samples = [s for s in recorder.completed_since(start) if s.end < end]
            windows.append(Window(start, end, samples, snapshot()))
            stats.append(windows[-1].server_stats)
            result = windows[-1].result
            stable = is_stable([w.result for w in windows], settings.stability_percent)
            progress(
                f"  {workload.name} {point.label}: window {len(windows)}: {result.throughput:.2f} requests/s, "
                f"mean latency {result.latency_s * 1000:.1f} ms{' (stable)' if stable else ''}"
            )
            if stable:
                break
            start = end
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    last = windows[-STABLE_WINDOWS:]
    return PointResult(
        point=point,
        windows=last,
        stable=is_stable([w.result for w in windows], settings.stability_percent),
        window_count=len(windows),
        errors=recorder.errors,
        server_stats_before=stats[-len(last) - 1],
        server_stats_after=stats[-1],
        first_error=recorder.first_error,
        all_windows=[w.result for w in windows],
    )
