"""What the server says about a run: Triton's per-model statistics (diffed over the measured windows) and the
peak resident memory of tritonserver and its python-backend stub processes."""

from __future__ import annotations

import threading
from types import TracebackType

import psutil
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")
Counters = dict[str, dict[str, int]]  # model -> counter name -> cumulative value


def read_statistics(url: str, protocol: str) -> Counters:
    """Cumulative counters of every loaded model: requests, executions, and ns per phase."""
    if protocol == "grpc":
        with grpcclient.InferenceServerClient(url) as client:
            stats = client.get_inference_statistics(as_json=True)
    else:
        with httpclient.InferenceServerClient(url) as client:
            stats = client.get_inference_statistics()
    counters: Counters = {}
    for model in stats.get("model_stats", []):
        phases = model.get("inference_stats", {})
        # gRPC's JSON writes int64 as strings and leaves zeros out; HTTP writes numbers.
        entry = {
            "requests": int(phases.get("success", {}).get("count", 0)),
            "inferences": int(model.get("inference_count", 0)),
            "executions": int(model.get("execution_count", 0)),
        }
        for phase in PHASES:
            entry[f"{phase}_ns"] = int(phases.get(phase, {}).get("ns", 0))
        counters[model["name"]] = entry
    return counters


def counter_growth(before: Counters | None, after: Counters | None) -> Counters:
    """How much each model's counters grew between two snapshots (empty without both)."""
    if not before or not after:
        return {}
    growth = {}
    for name, end in after.items():
        start = before.get(name, dict.fromkeys(end, 0))
        growth[name] = {key: value - start.get(key, 0) for key, value in end.items()}
    return growth


def add_growth(spans: list[Counters]) -> Counters:
    """The growth over several spans (the alternations' measured windows of one load point)."""
    total: Counters = {}
    for growth in spans:
        for name, counters in growth.items():
            into = total.setdefault(name, dict.fromkeys(counters, 0))
            for key, value in counters.items():
                into[key] = into.get(key, 0) + value
    return total


def split_from_growth(growth: Counters) -> dict[str, dict[str, float]]:
    """Per model over the span: requests, average batch (inferences per execution), and µs per request in each
    phase. Models that served nothing in the span are left out."""
    split = {}
    for name, grown in growth.items():
        requests = grown["requests"]
        if requests <= 0:
            continue
        executions = grown["executions"]
        entry: dict[str, float] = {
            "requests": requests,
            "average_batch": grown["inferences"] / executions if executions else 0.0,
        }
        for phase in PHASES:
            entry[f"{phase}_us"] = grown[f"{phase}_ns"] / requests / 1000
        split[name] = entry
    return split


def server_split(before: Counters | None, after: Counters | None) -> dict[str, dict[str, float]]:
    """The split between two snapshots of the counters."""
    return split_from_growth(counter_growth(before, after))


def tree_memory(process: psutil.Process) -> tuple[int, int]:
    """Resident bytes of a process and all its descendants (the python-backend stubs are children): summed RSS,
    and summed PSS. RSS counts a page shared by several processes (their common libraries, the shared-memory
    regions tritonserver exchanges tensors with its stubs through) once in every one of them; PSS splits it among
    them, so the PSS sum is what the tree occupies."""
    rss = pss = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)  # PSS is Linux's; elsewhere count the resident bytes
    return rss, pss


class PeakMemory:
    """``with PeakMemory(pid) as peak:`` samples the process tree every ``interval_s``; ``peak.bytes`` is the
    highest summed RSS, ``peak.pss_bytes`` the highest summed PSS (see ``tree_memory``)."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.bytes = 0
        self.pss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            try:
                rss, pss = tree_memory(self.process)
            except psutil.NoSuchProcess:
                return
            self.bytes, self.pss_bytes = max(self.bytes, rss), max(self.pss_bytes, pss)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
