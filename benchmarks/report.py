"""The run's report: one JSON document (genai-perf-like) and the files derived from it (CSV, perf_analyzer CSV,
Markdown). Everything written is computed from the document, so the files always agree."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.peer_split import time_split, time_split_markdown
from benchmarks.statistics import FIELDS, summarize
from benchmarks.targets import check_targets, round_ratios, spread

SCHEMA_VERSION = 1
PRIMARY_METRIC = {
    "clip-image": "image_throughput",
    "clip-text": "request_throughput",
    "clip-rank": "image_throughput",
    "llava": "output_token_throughput",
}
_STAT = {"type": ["number", "null"]}
METRIC_SCHEMA = {
    "type": "object",
    "required": ["unit", *FIELDS],
    "properties": {"unit": {"type": "string"}, **dict.fromkeys(FIELDS, _STAT)},
}
_METRICS = {
    "type": "object",
    "required": ["request_throughput", "request_latency"],
    "additionalProperties": METRIC_SCHEMA,
}
REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "benchmark", "input_config", "server", "points", "baselines", "ratios", "targets"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "benchmark": {"enum": list(PRIMARY_METRIC)},
        "input_config": {"type": "object"},
        "server": {
            "type": "object",
            "required": ["url", "protocol", "model", "peak_memory_bytes"],
            "properties": {
                "peak_memory_bytes": {"type": ["integer", "null"]},
                "peak_pss_bytes": {"type": ["integer", "null"]},
            },
        },
        "points": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["mode", "value", "stable", "windows", "errors", "metrics", "server_split"],
                "properties": {
                    "mode": {"enum": ["concurrency", "request_rate"]},
                    "value": {"type": "number"},
                    "stable": {"type": "boolean"},
                    "metrics": _METRICS,
                    "server_split": {"type": "object"},
                },
            },
        },
        "baselines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "description", "batch_size", "requests", "metrics"],
                "properties": {"name": {"enum": ["huggingface", "limit"]}, "metrics": _METRICS},
            },
        },
        "ratios": {"type": "array"},
        "targets": {"type": "array"},
        "vllm_peer": {
            "type": "object",
            "required": ["url", "workloads", "ratios", "rounds", "prompt_tokens"],
            "properties": {
                "workloads": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["project", "peer"],
                        "additionalProperties": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["mode", "value", "metrics"],
                                "properties": {"metrics": _METRICS},
                            },
                        },
                    },
                },
                "ratios": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["workload", "mode", "value", "metric", "field", "median", "min", "max", "values"],
                        "properties": {"median": _STAT, "min": _STAT, "max": _STAT},
                    },
                },
                "headline": {"type": "array"},
            },
        },
        "rounds": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["points", "baselines"],
                "properties": {"points": {"type": "array"}, "baselines": {"type": "array"}},
            },
        },
    },
}


def build_report(
    benchmark: str,
    input_config: dict[str, Any],
    server: dict[str, Any],
    points: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    environment: dict[str, Any],
    rounds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole document, with the ratios and the targets computed from the figures. ``points`` and
    ``baselines`` pool every alternation; ``rounds`` holds each alternation's own, which the ratios come from."""
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "vlm-bench",
        "benchmark": benchmark,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input_config": input_config,
        "environment": environment,
        "server": server,
        "points": points,
        "baselines": baselines,
    }
    if rounds:
        report["rounds"] = rounds
    report["ratios"] = throughput_ratios(report)
    report["targets"] = check_targets(report)
    return report


def throughput_ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Served / baseline on the benchmark's primary throughput for every load point: the median over the
    alternations, and their spread."""
    metric = PRIMARY_METRIC[report["benchmark"]]
    rows = []
    for point in report["points"]:
        row: dict[str, Any] = {"mode": point["mode"], "value": point["value"], "metric": metric}
        for name in ("huggingface", "limit"):
            figures = spread(round_ratios(report, point["mode"], point["value"], metric, "avg", name))
            row[f"vs_{name}"] = figures["median"]
            row[f"vs_{name}_spread"] = figures
        rows.append(row)
    return rows


GATEWAY_THROUGHPUT_BOUND = 0.9  # the gateway may cost at most 10% throughput at concurrency 8 (CLIP embeddings)
GATEWAY_TTFT_BOUND_MS = 5.0  # ... and add at most 5 ms to the p50 time to first token


def add_gateway(report: dict[str, Any], gateway: dict[str, Any], points: list[dict[str, Any]]) -> None:
    """The same load points measured through vlm-gateway in the same run, compared with the direct ones."""
    metric = PRIMARY_METRIC[report["benchmark"]]
    direct = {(p["mode"], p["value"]): p["metrics"] for p in report["points"]}
    rows = []
    for point in points:
        through, straight = point["metrics"], direct[(point["mode"], point["value"])]
        row: dict[str, Any] = {"mode": point["mode"], "value": point["value"], "metric": metric}
        served, base = through[metric]["avg"], straight[metric]["avg"]
        row["throughput_ratio"] = served / base if served is not None and base else None
        row["added_latency_p50_ms"] = _difference(through, straight, "request_latency")
        if "time_to_first_token" in through:
            row["added_ttft_p50_ms"] = _difference(through, straight, "time_to_first_token")
        row["gateway_cpu_ms_per_request"] = point.get("gateway_cpu_ms_per_request")
        rows.append(row)
    report["gateway"] = {**gateway, "points": points, "vs_direct": rows, "targets": _gateway_targets(report, rows)}


def _difference(through: dict[str, Any], straight: dict[str, Any], metric: str) -> float | None:
    a, b = through[metric]["p50"], straight[metric]["p50"]
    return None if a is None or b is None else a - b


def _gateway_targets(report: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = []
    for row in rows:
        load = f"{row['mode']} {row['value']:g}"
        if report["benchmark"] in ("clip-image", "clip-text") and row["mode"] == "concurrency" and row["value"] == 8:
            ratio = row["throughput_ratio"]
            targets.append(
                {
                    "target": f"{report['benchmark']} through vlm-gateway at {load}: {row['metric']} vs direct",
                    "requirement": f"gateway / direct >= {GATEWAY_THROUGHPUT_BOUND:g}",
                    "measured": ratio,
                    "met": None if ratio is None else ratio >= GATEWAY_THROUGHPUT_BOUND,
                }
            )
        if "added_ttft_p50_ms" in row:
            added = row["added_ttft_p50_ms"]
            targets.append(
                {
                    "target": f"llava through vlm-gateway at {load}: added p50 time to first token (ms)",
                    "requirement": f"<= {GATEWAY_TTFT_BOUND_MS:g} ms",
                    "measured": added,
                    "met": None if added is None else added <= GATEWAY_TTFT_BOUND_MS,
                }
            )
    return targets


def gateway_markdown(report: dict[str, Any]) -> list[str]:
    gateway = report["gateway"]
    lines = ["", f"Through vlm-gateway ({gateway['url']}), the same points in the same run:", ""]
    columns = ["load", "requests/s", "latency p50 ms", "TTFT p50 ms", "throughput vs direct", "added latency p50 ms",
               "added TTFT p50 ms", "gateway CPU ms/request", "stable"]  # fmt: skip
    lines += ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for point, row in zip(gateway["points"], gateway["vs_direct"], strict=True):
        metrics = point["metrics"]
        ttft = metrics.get("time_to_first_token", {}).get("p50")
        lines.append(
            f"| {row['mode']} {row['value']:g} | {_number(metrics['request_throughput']['avg'])} "
            f"| {_number(metrics['request_latency']['p50'])} | {_number(ttft)} | {_ratio(row['throughput_ratio'])} "
            f"| {_number(row['added_latency_p50_ms'], 2)} | {_number(row.get('added_ttft_p50_ms'), 2)} "
            f"| {_number(row['gateway_cpu_ms_per_request'], 2)} | {'yes' if point['stable'] else 'no'} |"
        )
    for target in gateway["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        lines.append(f"- **{verdict}** {target['target']}: {_number(target['measured'], 3)} ({target['requirement']})")
    return lines


# This project (through vlm-gateway) / vllm serve, per workload and load point: throughput above 1 and time to first
# token below 1 favour this project. The headline pairs are the ones the comparison is judged on.
PEER_RATIOS = (("output_token_throughput", "avg"), ("time_to_first_token", "p50"))
PEER_HEADLINES = (("output_token_throughput", "avg", 8), ("time_to_first_token", "p50", 1))
# The goals against vllm serve, judged on the median over the alternations (workload, metric, field,
# concurrency, bound, at least): one image per request, 8 clients at least 1.2x its output tokens/s, 1 client no
# slower to the first token.
PEER_TARGETS = (
    ("image", "output_token_throughput", "avg", 8, 1.2, True),
    ("image", "time_to_first_token", "p50", 1, 1.0, False),
)


def add_vllm_peer(
    report: dict[str, Any],
    peer: dict[str, Any],
    workloads: dict[str, dict[str, list[dict[str, Any]]]],
    rounds: list[dict[str, dict[str, list[dict[str, Any]]]]],
) -> None:
    """vLLM's own OpenAI server measured in the same run: ``workloads`` maps each workload ("image", "text") to
    its load points on both sides (``project``: this project through vlm-gateway, ``peer``: vllm serve), pooled
    over the alternations; ``rounds`` holds each alternation's own, which the ratios come from (the median over
    them, with the spread)."""
    rows = []
    for kind, sides in workloads.items():
        for index, point in enumerate(sides["project"]):
            for metric, field in PEER_RATIOS:
                values = []
                for round_ in rounds:
                    mine = round_[kind]["project"][index]["metrics"].get(metric, {}).get(field)
                    theirs = round_[kind]["peer"][index]["metrics"].get(metric, {}).get(field)
                    if mine is not None and theirs:
                        values.append(mine / theirs)
                row = {"workload": kind, "mode": point["mode"], "value": point["value"], "metric": metric}
                rows.append({**row, "field": field, **spread(values)})
    headline = [
        row
        for kind in workloads
        for metric, field, concurrency in PEER_HEADLINES
        for row in rows
        if (row["workload"], row["metric"], row["field"], row["mode"]) == (kind, metric, field, "concurrency")
        and row["value"] == concurrency
    ]
    report["vllm_peer"] = {
        **peer,
        "workloads": workloads,
        "ratios": rows,
        "headline": headline,
        "targets": _peer_targets(rows, report.get("server", {}).get("served_model", "llava")),
        "time_split": time_split(workloads),
        "rounds": rounds,
    }


def _peer_targets(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    targets = []
    for kind, metric, field, concurrency, bound, at_least in PEER_TARGETS:
        relation = ">=" if at_least else "<="
        target: dict[str, Any] = {
            "target": f"{model} ({kind} requests), concurrency {concurrency}: {metric} {field} vs vllm serve",
            "requirement": f"this project / vllm serve {relation} {bound:g}",
            "measured": None,
            "met": None,
        }
        for row in rows:
            key = (row["workload"], row["metric"], row["field"], row["mode"], row["value"])
            if key == (kind, metric, field, "concurrency", concurrency) and row["median"] is not None:
                median = row["median"]
                met = median >= bound if at_least else median <= bound
                target.update(measured=median, spread=[row["min"], row["max"]], alternations=len(row["values"]))
                target["met"] = met
        targets.append(target)
    return targets


def _peer_load(row: dict[str, Any]) -> str:
    return f"concurrency {row['value']:g}" if row["mode"] == "concurrency" else f"{row['value']:g} req/s"


def vllm_peer_markdown(report: dict[str, Any]) -> list[str]:
    peer = report["vllm_peer"]
    alternations = len(peer["rounds"])
    version = f"vLLM {peer['version']}, " if peer.get("version") else ""
    lines = [
        "",
        f"Against vLLM's own OpenAI server (`vllm serve`, {version}{peer['url']}) on the same checkpoint"
        f"{_peer_precisions(report)}, the same requests through its chat completions API, alternating with this "
        f"project through vlm-gateway in each of {alternations} alternations; ratios this project / vllm serve, the "
        "median (lowest-highest):",
        "",
    ]
    columns = ["workload", "load", "tokens/s", "vllm serve tokens/s", "tokens/s ratio", "TTFT p50 ms",
               "vllm serve TTFT p50 ms", "TTFT p50 ratio", "tokens/request", "stable"]  # fmt: skip
    lines += ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    ratios = {(r["workload"], r["mode"], r["value"], r["metric"]): r for r in peer["ratios"]}
    for kind, sides in peer["workloads"].items():
        for mine, theirs in zip(sides["project"], sides["peer"], strict=True):
            key = (kind, mine["mode"], mine["value"])
            figures = [
                (mine["metrics"][metric][field], theirs["metrics"][metric][field], ratios[(*key, metric)])
                for metric, field in PEER_RATIOS
            ]
            lengths = [side["metrics"]["output_sequence_length"]["avg"] for side in (mine, theirs)]
            cells = [f"{_number(a)} | {_number(b)} | {_ratio_with_spread(ratio)}" for a, b, ratio in figures]
            stable = "yes" if mine["stable"] and theirs["stable"] else "no"
            lengths_cell = f"{_number(lengths[0])} / {_number(lengths[1])}"
            lines.append(f"| {kind} | {_peer_load(mine)} | " + " | ".join(cells) + f" | {lengths_cell} | {stable} |")
    lines.append("")
    for row in peer["headline"]:
        ratio = f"{row['metric']} {row['field']} this project / vllm serve {_ratio_with_spread(row)}"
        lines.append(f"- **{row['workload']}, {_peer_load(row)}**: {ratio}")
    lines += [_target_line(target) for target in peer.get("targets", [])]
    for kind, counts in peer.get("prompt_tokens", {}).items():
        verdict = "equal" if counts["equal"] else "DIFFERENT: the two sides do not run the same prompt"
        mine, theirs = counts["project"], counts["vllm_serve"]
        lines.append(f"- prompt tokens of one {kind} request: {mine} through vlm-gateway, {theirs} on vllm serve "
                     f"({verdict})")  # fmt: skip
    if peer.get("peak_memory_bytes"):
        memory = _memory(peer).replace("tritonserver and its stubs", "its processes")
        lines.append(f"- vllm serve peak memory: {memory}")
    if peer.get("time_split"):
        lines += time_split_markdown(peer["time_split"])
    return lines


def write_json(report: dict[str, Any], out: Path) -> Path:
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def write_csv(report: dict[str, Any], out: Path) -> Path:
    """Long format: one row per (source, load point, metric)."""
    path = out / "metrics.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "mode", "value", "metric", "unit", *FIELDS])
        rows = [("served", p["mode"], p["value"], p["metrics"]) for p in report["points"]]
        rows += [(b["name"], "batch_size", b["batch_size"], b["metrics"]) for b in report["baselines"]]
        rows += [("gateway", p["mode"], p["value"], p["metrics"]) for p in report.get("gateway", {}).get("points", [])]
        rows += _peer_rows(report)
        for source, mode, value, metrics in rows:
            for name, stats in metrics.items():
                writer.writerow([source, mode, value, name, stats["unit"], *(stats[f] for f in FIELDS)])
    return path


PEER_SOURCES = {"project": "vlm-gateway", "peer": "vllm-serve"}


def _peer_rows(report: dict[str, Any]) -> list[tuple[str, str, float, dict[str, Any]]]:
    """The vLLM peer's figures (sources ``vlm-gateway:image``, ``vllm-serve:image``, ...; ``vlm-gateway:image``
    repeats ``gateway``'s) and its ratios: source ``vlm-gateway/vllm-serve:image``, unit ``ratio of avg`` (or
    p50), and the statistics over the alternations' ratios (p50: the median the summary shows)."""
    peer = report.get("vllm_peer")
    if not peer:
        return []
    rows = [
        (f"{PEER_SOURCES[side]}:{kind}", p["mode"], p["value"], p["metrics"])
        for kind, sides in peer["workloads"].items()
        for side in ("project", "peer")
        for p in sides[side]
    ]
    for ratio in peer["ratios"]:
        stats = summarize(ratio["values"], f"ratio of {ratio['field']}")
        rows.append((f"vlm-gateway/vllm-serve:{ratio['workload']}", ratio["mode"], ratio["value"],
                     {ratio["metric"]: stats}))  # fmt: skip
    return rows


def write_perf_analyzer_csv(report: dict[str, Any], out: Path) -> Path:
    """perf_analyzer's ``-f`` layout (µs): server phases summed over the ensemble's models, the rest of the
    average latency is network and client."""
    path = out / "perf_analyzer.csv"
    phases = ("queue", "compute_input", "compute_infer", "compute_output")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Concurrency",
                "Request Rate",
                "Inferences/Second",
                "Network+Client",
                "Server Queue",
                "Server Compute Input",
                "Server Compute Infer",
                "Server Compute Output",
                "p50 latency",
                "p90 latency",
                "p95 latency",
                "p99 latency",
                "Avg latency",
            ]
        )
        for point in report["points"]:
            latency = point["metrics"]["request_latency"]
            # An ensemble's own figures already add up its steps': count the steps, as perf_analyzer does.
            steps = {n: m for n, m in point["server_split"].items() if n != report["server"]["model"]}
            models = steps or point["server_split"]
            server = [sum(m[f"{phase}_us"] for m in models.values()) for phase in phases]
            average = (latency["avg"] or 0) * 1000
            writer.writerow(
                [
                    int(point["value"]) if point["mode"] == "concurrency" else "",
                    point["value"] if point["mode"] == "request_rate" else "",
                    round(point["metrics"]["request_throughput"]["avg"] or 0, 3),
                    round(max(average - sum(server), 0)),
                    *(round(value) for value in server),
                    *(round((latency[f] or 0) * 1000) for f in ("p50", "p90", "p95", "p99")),
                    round(average),
                ]
            )
    return path


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _target_line(target: dict[str, Any]) -> str:
    """A target's verdict, its median ratio over the alternations with their spread, and what it needs."""
    verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
    measured = _ratio(target["measured"])
    if target.get("spread") and target.get("alternations", 1) > 1:
        low, high = target["spread"]
        measured += f" ({low:.2f}-{high:.2f} over {target['alternations']} alternations)"
    note = f" {target['note']}" if "note" in target else ""
    return f"- **{verdict}** {target['target']}: {measured} (needs {target['requirement']}){note}"


def _encoder_precisions(server: dict[str, Any]) -> list[str]:
    return sorted(set((server.get("encoder_precisions") or {}).values()))


def _precisions(server: dict[str, Any]) -> str:
    precisions = _encoder_precisions(server)
    return f"encoders at {', '.join(precisions)}; " if precisions else ""


def _peer_precisions(report: dict[str, Any]) -> str:
    """What each side computes in, where known: an int8 export's ratios are not a float32 comparison."""
    precisions = _encoder_precisions(report.get("server", {}))
    dtype = (report["vllm_peer"].get("settings") or {}).get("dtype")  # None: a peer this run did not start
    if not precisions or not dtype:
        return ""
    return f" (this project's encoders at {', '.join(precisions)}, `vllm serve`'s whole model at {dtype})"


def _memory(server: dict[str, Any]) -> str:
    rss, pss = server["peak_memory_bytes"], server.get("peak_pss_bytes")
    if not rss:
        return "not measured"
    text = f"{_number(rss / 2**20, 0)} MiB ({rss / 1e9:.3f} GB) resident, summed over tritonserver and its stubs"
    if pss:
        text += f"; {_number(pss / 2**20, 0)} MiB ({pss / 1e9:.3f} GB) proportional (shared pages counted once)"
    return text


def _ratio_with_spread(figures: dict[str, Any]) -> str:
    """``1.72x (1.60-1.85)``: the median over the alternations, then the lowest and highest."""
    if figures["median"] is None:
        return "-"
    if len(figures["values"]) < 2:
        return _ratio(figures["median"])
    return f"{figures['median']:.2f}x ({figures['min']:.2f}-{figures['max']:.2f})"


def markdown(report: dict[str, Any]) -> str:
    kind, config = report["benchmark"], report["input_config"]
    primary = PRIMARY_METRIC[kind]
    columns = [("request_throughput", "avg", "requests/s"), ("request_latency", "p50", "latency p50 ms")]
    columns += [("request_latency", "p99", "latency p99 ms")]
    if primary == "image_throughput":
        columns.insert(1, ("image_throughput", "avg", "images/s"))
    if kind == "llava":
        columns += [
            ("output_token_throughput", "avg", "tokens/s"),
            ("time_to_first_token", "p50", "TTFT p50 ms"),
            ("inter_token_latency", "p50", "ITL p50 ms"),
            ("output_sequence_length", "avg", "tokens/request"),
        ]
    images = kind != "clip-text" and config.get("images_per_request", 1) != 0
    videos = config.get("video_frames") or 0
    server = report["server"]
    # Reports written before models had names carry neither their task nor the model.
    title = kind
    if server.get("served_model"):
        title = f"{server['task'].replace('_', '-')} of {server['served_model']} ({server['family']})"
    lines = [
        f"## vlm-bench {title}",
        "",
        f"{config['protocol']} at {report['server']['url']}; checkpoint `{config.get('checkpoint')}`; "
        + (f"images {config['image_size']} {config['image_format']}; " if config.get("image_size") and images else "")
        + (f"{config['videos_per_request']} video(s) of {videos} frames at 1 fps; " if videos else "")
        + (
            f"prompt {config['prompt_tokens']} tokens, max {config['output_tokens']} output tokens; "
            if kind == "llava"
            else ""
        )
        + _precisions(report["server"])
        + f"server peak memory {_memory(report['server'])}.",
        "",
        "| load | " + " | ".join(title for _, _, title in columns) + " | vs Hugging Face | vs limit | stable |",
        "|---" * (len(columns) + 4) + "|",
    ]
    ratios = {(r["mode"], r["value"]): r for r in report["ratios"]}
    for point in report["points"]:
        load = f"concurrency {point['value']:g}" if point["mode"] == "concurrency" else f"{point['value']:g} req/s"
        cells = [_number(point["metrics"][metric][field]) for metric, field, _ in columns]
        ratio = ratios[(point["mode"], point["value"])]
        stable = "yes" if point["stable"] else f"no ({point['windows']} windows)"
        lines.append(
            f"| {load} | "
            + " | ".join(cells)
            + f" | {_ratio_with_spread(ratio['vs_huggingface_spread'])}"
            + f" | {_ratio_with_spread(ratio['vs_limit_spread'])} | {stable} |"
        )
    for baseline in report["baselines"]:
        cells = [_number(baseline["metrics"].get(metric, {}).get(field)) for metric, field, _ in columns]
        lines.append(f"| {baseline['name']} (batch {baseline['batch_size']}) | " + " | ".join(cells) + " | | | |")
    alternations = len(report.get("rounds") or [None])
    lines += ["", "Baselines: " + "; ".join(f"{b['name']}: {b['description']}" for b in report["baselines"]), ""]
    lines += [
        f"Ratios: served / baseline in each of {alternations} alternations (served windows, then baseline windows),"
        " as the median (lowest-highest).",
        "",
    ]
    lines += ["Server-side split (µs per request, Triton statistics over the measured windows):", ""]
    lines += ["| load | model | requests | avg batch | queue | compute input | compute infer | compute output |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for point in report["points"]:
        for model, split in point["server_split"].items():
            lines.append(
                f"| {point['mode']} {point['value']:g} | {model} | {split['requests']} "
                f"| {split['average_batch']:.2f} | "
                + " | ".join(
                    _number(split[f"{phase}_us"], 0)
                    for phase in ("queue", "compute_input", "compute_infer", "compute_output")
                )
                + " |"
            )
    if report["targets"]:
        lines += ["", "Targets:", ""]
        lines += [_target_line(target) for target in report["targets"]]
    if "gateway" in report:
        lines += gateway_markdown(report)
    if "vllm_peer" in report:
        lines += vllm_peer_markdown(report)
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], out: Path) -> Path:
    path = out / "summary.md"
    path.write_text(markdown(report))
    return path
