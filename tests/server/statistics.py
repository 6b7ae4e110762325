"""Read Triton's per-model statistics: how many executions ran at each batch size."""

from __future__ import annotations

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
