"""genai-perf's metrics from timed requests: latencies per request, throughputs per measurement window."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.statistics import summarize
from benchmarks.workloads import Sample

MS = 1000.0
Span = tuple[float, float]  # a measurement window's (start, end), perf_counter seconds


def _per_window(samples: Sequence[Sample], spans: Sequence[Span], amount: str) -> list[float]:
    values = []
    for start, end in spans:
        inside = [s for s in samples if start <= s.end < end]
        total = len(inside) if amount == "requests" else sum(getattr(s, amount) or 0 for s in inside)
        values.append(total / (end - start))
    return values


def compute_metrics(
    samples: Sequence[Sample], spans: Sequence[Span], images: bool, generation: bool
) -> dict[str, dict]:
    """Latencies are summarised over requests, throughputs over windows; image metrics when requests carry
    images, token metrics for generation. ``inter_token_latency`` is genai-perf's: (latency - TTFT) divided by
    (output tokens - 1), per request with more than one token. Requests the server refused as busy count in
    none of these: they have ``refused_throughput`` and ``refused_latency`` of their own, when there are any.
    Open-loop samples add ``send_lag`` (arrival to send) and ``refusal_time`` (send to refusal)."""
    refused = [s for s in samples if s.refused]
    send_lags = [(s.sent - s.start) * MS for s in samples if s.sent is not None]
    samples = [s for s in samples if not s.refused]
    metrics = {
        "request_throughput": summarize(_per_window(samples, spans, "requests"), "requests/sec"),
        "request_latency": summarize([s.latency_s * MS for s in samples], "ms"),
    }
    if images:
        metrics["image_throughput"] = summarize(_per_window(samples, spans, "images"), "images/sec")
        metrics["image_latency"] = summarize([s.latency_s * MS / s.images for s in samples if s.images], "ms/image")
    if generation:
        metrics["time_to_first_token"] = summarize(
            [(s.first_token - s.start) * MS for s in samples if s.first_token is not None], "ms"
        )
        metrics["inter_token_latency"] = summarize(
            [
                (s.end - s.first_token) * MS / (s.output_tokens - 1)
                for s in samples
                if s.first_token is not None and s.output_tokens and s.output_tokens > 1
            ],
            "ms",
        )
        metrics["output_token_throughput"] = summarize(_per_window(samples, spans, "output_tokens"), "tokens/sec")
        metrics["output_sequence_length"] = summarize([s.output_tokens or 0 for s in samples], "tokens")
        metrics["input_sequence_length"] = summarize([s.prompt_tokens or 0 for s in samples], "tokens")
    if refused:
        metrics["refused_throughput"] = summarize(_per_window(refused, spans, "requests"), "requests/sec")
        metrics["refused_latency"] = summarize([s.latency_s * MS for s in refused], "ms")
    if send_lags:
        # Open loop: how late the generator sent each arrival, and how long the server took to refuse once sent.
        # A send lag near the latencies means the load generator, not the server, was the bottleneck.
        metrics["send_lag"] = summarize(send_lags, "ms")
        refusals = [(s.end - s.sent) * MS for s in refused if s.sent is not None]
        if refusals:
            metrics["refusal_time"] = summarize(refusals, "ms")
    return metrics
