"""Read Triton's per-model statistics: how many executions ran at each batch size."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable

import tritonclient.grpc as grpcclient

from serving.launcher import TritonServer


def batch_counts(server: TritonServer, model: str) -> dict[int, int]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def batched_executions(before: dict[int, int], after: dict[int, int]) -> int:
    """Executions since ``before`` that held more than one request's items."""
    return sum(count - before.get(size, 0) for size, count in after.items() if size > 1)


def cache_hits(server: TritonServer, model: str) -> int:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats["inference_stats"]["cache_hit"].get("count", 0))


def metric_samples(server: TritonServer, name: str) -> dict[str, float]:
    """Prometheus samples of ``name`` from the metrics endpoint: label text -> value."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line[len(name) :].rpartition(" ")
            samples[labels] = float(value)
    return samples


def metric_total(server: TritonServer, name: str, model: str | None = None) -> float:
    """The sum of ``name``'s samples; only ``model``'s (its ``model`` label) when given."""
    return sum(value for labels, value in metric_samples(server, name).items() if _of_model(labels, model))


def steps_by_batch_size(server: TritonServer, model: str | None = None) -> dict[int, int]:
    """The decoders' decode steps (``model``'s only, when given), by how many sequences each ran."""
    found = re.compile(r'batch_size="(\d+)"')
    steps: dict[int, int] = {}
    for labels, value in metric_samples(server, "vlm_decoder_steps_total").items():
        if (match := found.search(labels)) and _of_model(labels, model):
            size = int(match.group(1))
            steps[size] = steps.get(size, 0) + int(value)
    return steps


def _of_model(labels: str, model: str | None) -> bool:
    return model is None or f'model="{model}"' in labels


def finished_requests(server: TritonServer, reason: str) -> int:
    samples = metric_samples(server, "vlm_decoder_requests_finished_total")
    return int(sum(value for labels, value in samples.items() if f'finish_reason="{reason}"' in labels))


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Poll a server-side condition (metrics lag the responses by up to one decoder step)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def wait_for_idle_decoder(server: TritonServer) -> None:
    wait_until(lambda: metric_total(server, "vlm_decoder_active_sequences") == 0, "the decoder is idle")
