"""Where each side's time goes in the vLLM peer comparison, per workload and load point.

Both sides: a request's mean latency split into its time to the first token and the rest (decode), from the load
generator's own timings (means, so the two parts add up to the latency). This project also: the server's per-step
split from Triton's statistics over the same windows (each Triton model's queue and compute per request: the
ensemble, whose compute spans its steps, and each step: the preprocess, the vision tower, the decoder; the decoder
is decoupled, so Triton counts its compute until its engine has the request, not the whole generation). vLLM's
server exposes no per-step split to the load generator; its TTFT holds its preprocessing, vision tower and prefill.
"""

from __future__ import annotations

from typing import Any

US_PER_MS = 1000.0


def _side(point: dict[str, Any]) -> dict[str, float | None]:
    metrics = point["metrics"]
    latency = metrics.get("request_latency", {}).get("avg")
    ttft = metrics.get("time_to_first_token", {}).get("avg")
    decode = latency - ttft if latency is not None and ttft is not None else None
    return {"latency_ms": latency, "ttft_ms": ttft, "decode_ms": decode}


def _steps(point: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each Triton model's queue and compute (input + infer + output) in ms per request it served."""
    return {
        model: {
            "queue_ms": split["queue_us"] / US_PER_MS,
            "compute_ms": (split["compute_input_us"] + split["compute_infer_us"] + split["compute_output_us"])
            / US_PER_MS,
            "average_batch": split["average_batch"],
        }
        for model, split in point.get("server_split", {}).items()
    }


def time_split(workloads: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per workload and load point: ``project`` and ``peer`` (TTFT and decode ms), ``project_steps``."""
    rows = []
    for kind, sides in workloads.items():
        for mine, theirs in zip(sides["project"], sides["peer"], strict=True):
            rows.append(
                {
                    "workload": kind,
                    "mode": mine["mode"],
                    "value": mine["value"],
                    "project": _side(mine),
                    "peer": _side(theirs),
                    "project_steps": _steps(mine),
                }
            )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def time_split_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "Where the time goes (mean ms per request; TTFT + decode = latency; this project's steps from Triton's "
        "statistics, queue + compute per request each served: the ensemble's compute spans its steps; the decoder "
        "is decoupled, so its compute stops when its engine has the request):",
        "",
        "| workload | load | this project TTFT | decode | vllm serve TTFT | decode | this project's steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        load = f"concurrency {row['value']:g}" if row["mode"] == "concurrency" else f"{row['value']:g} req/s"
        mine, theirs = row["project"], row["peer"]
        steps = "; ".join(
            f"{model} {_ms(step['queue_ms'])} + {_ms(step['compute_ms'])} (batch {step['average_batch']:.1f})"
            for model, step in row["project_steps"].items()
        )
        lines.append(
            f"| {row['workload']} | {load} | {_ms(mine['ttft_ms'])} | {_ms(mine['decode_ms'])} "
            f"| {_ms(theirs['ttft_ms'])} | {_ms(theirs['decode_ms'])} | {steps or '-'} |"
        )
    return lines
