"""Reduced precision on the GPU: every encoder and projector the project exports, from real-size presets (random
weights, built locally), in float16 and bfloat16 against float32 on the same inputs (cosine min/mean and max abs
diff per item, and the spec's budget for that precision), and its items/s by batch size (warmed up, CUDA
synchronised). Writes precision.json and precision.md directly under --out, after each preset, so a run cut short
still leaves what it measured.

    python -m benchmarks.gpu_precision --out DIR [--device DEVICE] [--presets NAME,...] [--batch-sizes N,...]
        [--budget-s SECONDS]    (--help: the defaults)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import transformers

from benchmarks.gpu_components import Component, Feed, components
from checkpoints.presets import build_preset
from export.specs import Tolerance

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
JSON_FILE, TABLE_FILE = "precision.json", "precision.md"


def _budget(component: Component, dtype: str) -> Tolerance:
    spec = component.spec
    return {"float32": spec.tolerance, "float16": spec.fp16_tolerance, "bfloat16": spec.bf16_tolerance}[dtype]


def _cast(feed: Feed, dtype: torch.dtype) -> Feed:
    return {name: t.to(dtype) if t.is_floating_point() else t for name, t in feed.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parity(reference: torch.nn.Module, candidate: torch.nn.Module, feeds: list[Feed], dtype: torch.dtype) -> dict:
    """Per item (the whole output of one image or text): cosine against float32, and the largest difference."""
    cosines, max_abs_diff = [], 0.0
    with torch.inference_mode():
        for feed in feeds:
            expected = reference(**feed).double().flatten(1)
            actual = candidate(**_cast(feed, dtype)).double().flatten(1)
            max_abs_diff = max(max_abs_diff, (expected - actual).abs().max().item())
            # Clamped: rounding can put identical outputs' cosine a hair above 1.
            cosines += torch.nn.functional.cosine_similarity(expected, actual, dim=1, eps=1e-30).clamp(max=1).tolist()
    return {"min_cosine": min(cosines), "mean_cosine": sum(cosines) / len(cosines), "max_abs_diff": max_abs_diff}


def throughput(module: torch.nn.Module, feed: Feed, device: torch.device, warmup: int, min_seconds: float) -> dict:
    """Items/s at one batch size: ``warmup`` untimed batches, three to size the run, then enough batches for
    ``min_seconds``, timed from one synchronisation to the next."""

    def timed(iterations: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(iterations):
            module(**feed)
        _sync(device)
        return time.perf_counter() - start

    with torch.inference_mode():
        timed(warmup)
        iterations = max(3, math.ceil(min_seconds / max(timed(3) / 3, 1e-6)))
        elapsed = timed(iterations)
    batch_size = next(iter(feed.values())).shape[0]
    return {"items_per_s": batch_size * iterations / elapsed, "ms_per_batch": 1000 * elapsed / iterations}


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def measure(component: Component, args: argparse.Namespace, device: torch.device, deadline: float) -> list[dict]:
    """One row per precision: its parity against float32, then its throughput by batch size."""
    feeds = [component.parity_feed(n) for n in component.spec.parity_batch_sizes]
    rows = []
    for name, dtype in DTYPES.items():
        budget = _budget(component, name)
        row: dict[str, Any] = {"component": component.spec.name, "dtype": name, "unit": component.unit}
        row["budget"] = {"min_cosine": budget.min_cosine, "max_abs_diff": budget.max_abs_diff}
        try:
            candidate = copy.deepcopy(component.module).to(dtype)
            row.update(parity(component.module, candidate, feeds, dtype))
        except RuntimeError as error:  # e.g. an op with no kernel for this dtype on this device
            if dtype == torch.float32:
                raise
            rows.append({**row, "status": "skipped", "reason": f"not supported on {device.type}: {_first_line(error)}"})
            continue
        row["status"] = "measured"
        row["within_budget"] = row["min_cosine"] >= budget.min_cosine and row["max_abs_diff"] <= budget.max_abs_diff
        row["throughput"] = {}
        for n in args.batch_sizes:
            if time.monotonic() > deadline:
                row["throughput"][str(n)] = {"skipped": "time budget spent"}
                continue
            feed = _cast(component.load_feed(n), dtype)
            row["throughput"][str(n)] = throughput(candidate, feed, device, args.warmup, args.min_seconds)
        rows.append(row)
        del candidate
    return rows


def environment(device: torch.device) -> dict:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "tf32": torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32,
    }


def _cell(value: object, digits: str) -> str:
    return format(value, digits) if isinstance(value, float) else "-"


def table(summary: dict) -> str:
    sizes, env = summary["batch_sizes"], summary["environment"]
    lines = [
        f"# Reduced precision vs float32 on {env['device_name'] or env['device']} (eager PyTorch {env['torch']})",
        "",
        "| preset | component | dtype | min cosine | mean cosine | max abs diff | budget (cosine, diff) | within "
        + "".join(f"| items/s @{n} " for n in sizes)
        + "|",
        "| --- " * (8 + len(sizes)) + "|",
    ]
    for preset, result in summary["presets"].items():
        if "error" in result:
            lines.append(f"| {preset} | error: {result['error']} |" + " |" * (7 + len(sizes)))
        for row in result.get("rows", []):
            rates = [row.get("throughput", {}).get(str(n), {}).get("items_per_s") for n in sizes]
            budget = f"{row['budget']['min_cosine']}, {row['budget']['max_abs_diff']:g}"
            within = {True: "yes", False: "**no**"}.get(row.get("within_budget"), row.get("reason", "-"))
            cells = [preset, row["component"], row["dtype"]]
            cells += [_cell(row.get(k), ".6f") for k in ("min_cosine", "mean_cosine")]
            cells += [_cell(row.get("max_abs_diff"), ".3g"), budget, within]
            cells += [f"{_cell(rate, '.0f')} {row['unit']}" if rate else "-" for rate in rates]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(out: Path, summary: dict) -> None:
    (out / JSON_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    (out / TABLE_FILE).write_text(table(summary))


def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    deadline = started + args.budget_s
    device = torch.device(args.device)
    # float32 is the reference: TF32 (10 mantissa bits) stays off for its matrix products and convolutions.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    summary: dict[str, Any] = {
        "environment": environment(device),
        "batch_sizes": args.batch_sizes,
        "budget_s": args.budget_s,
        "presets": {},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-precision-", dir=args.work) as work:
        for preset in args.presets:
            if time.monotonic() > deadline:
                summary["presets"][preset] = {"error": "time budget spent before it started"}
                continue
            try:
                begin = time.monotonic()
                checkpoint = build_preset(preset, Path(work) / preset)
                result: dict[str, Any] = {"build_s": round(time.monotonic() - begin, 1), "rows": []}
                summary["presets"][preset] = result
                for component in components(checkpoint, device):
                    result["rows"] += measure(component, args, device, deadline)
                    write(args.out, summary)
            except Exception as error:  # one preset's failure is reported; the others are still measured
                traceback.print_exc()
                summary["presets"][preset] = {**summary["presets"].get(preset, {}), "error": _first_line(error)}
            if device.type == "cuda":
                torch.cuda.empty_cache()
    rows = [row for result in summary["presets"].values() for row in result.get("rows", [])]
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["complete"] = not any("error" in result for result in summary["presets"].values())
    summary["within_budget"] = all(row.get("within_budget", True) for row in rows)
    write(args.out, summary)
    return summary


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_precision",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for precision.json and precision.md")
    parser.add_argument("--device", default="cuda", help="torch device (cpu for a smoke run)")
    parser.add_argument(
        "--presets",
        type=lambda s: s.split(","),
        default=["clip-vit-base-patch32", "bench-llava", "qwen2.5-vl-7b-tower"],
        help="checkpoints/ presets, comma-separated",
    )
    parser.add_argument("--batch-sizes", type=_sizes, default=[1, 8, 32], help="comma-separated")
    parser.add_argument("--budget-s", type=float, default=210, help="past it, what is left is reported as skipped")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before each throughput measurement")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timed seconds per batch size, at least")
    parser.add_argument("--work", type=Path, default=None, help="where a temporary folder holds the built checkpoints")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    summary = run(parse_args(argv))
    print(table(summary))
    return 0 if summary["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
