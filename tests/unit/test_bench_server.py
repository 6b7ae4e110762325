"""benchmarks.server: the per-model split from two snapshots of Triton's counters, and peak process memory."""

from __future__ import annotations

import mmap
import os
import signal
import time

import psutil
import pytest

from benchmarks.server import PeakMemory, server_split, tree_memory


def counters(requests: int, executions: int, queue_ns: int, infer_ns: int) -> dict[str, int]:
    return {
        "requests": requests,
        "inferences": requests,
        "executions": executions,
        "queue_ns": queue_ns,
        "compute_input_ns": 0,
        "compute_infer_ns": infer_ns,
        "compute_output_ns": 0,
    }


def test_the_split_averages_the_counters_growth_per_request() -> None:
    before = {"clip_vision": counters(10, 10, 1_000_000, 50_000_000), "idle": counters(3, 3, 0, 0)}
    after = {"clip_vision": counters(30, 15, 5_000_000, 150_000_000), "idle": counters(3, 3, 0, 0)}
    split = server_split(before, after)
    assert list(split) == ["clip_vision"]  # a model that served nothing in the span is left out
    vision = split["clip_vision"]
    assert (vision["requests"], vision["average_batch"]) == (20, 4.0)
    assert (vision["queue_us"], vision["compute_infer_us"]) == pytest.approx((200.0, 5000.0))


def test_no_snapshots_give_an_empty_split() -> None:
    assert server_split(None, None) == {}


def test_peak_memory_sees_this_process_resident_bytes() -> None:
    with PeakMemory(os.getpid(), interval_s=0.01) as peak:
        block = bytearray(64 * 2**20)
    assert peak.bytes > len(block) and peak.pss_bytes > len(block)


def test_pss_splits_pages_shared_with_a_child_where_rss_counts_them_twice() -> None:
    shared = mmap.mmap(-1, 64 * 2**20)  # anonymous shared memory, as tritonserver shares tensors with its stubs
    shared.write(b"x" * len(shared))  # touch every page
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child touches the same pages, then waits
        os.close(reader)
        sum(shared[i] for i in range(0, len(shared), 4096))
        os.write(writer, b"1")
        time.sleep(30)
        os._exit(0)
    try:
        os.close(writer)
        assert os.read(reader, 1) == b"1"
        rss, pss = tree_memory(psutil.Process(os.getpid()))
        assert rss - pss > 0.8 * 32 * 2**20  # half of the 64 MiB region is counted twice in the RSS sum
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
