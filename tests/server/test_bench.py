"""vlm-bench end to end against the session's server: a two-point sweep with baselines writes every report file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import psutil
import pytest
from PIL import Image

from benchmarks.cli import main as vlm_bench
from benchmarks.report import REPORT_SCHEMA
from serving.launcher import TritonServer

SHORT = ["--concurrency", "1,2", "--window-seconds", "0.2", "--window-requests", "2", "--max-windows", "3"]
SHORT += ["--warmup-requests", "1", "--baseline-requests", "2", "--limit-batch-sizes", "2", "--input-count", "8"]
SHORT += ["--alternations", "2"]


CHAT = ["--image-size", "64", "--prompt-tokens", "8", "--output-tokens", "4"]
TOKEN_PLOTS = {"time_to_first_token.png", "inter_token_latency.png"}


@pytest.mark.parametrize(
    ("benchmark", "model", "checkpoint", "extra", "files", "hugging_face"),
    [
        ("clip-image", "clip", "tiny_clip", ["--image-size", "64"], {"perf_analyzer.csv"}, "CLIPModel"),
        ("llava", "llava", "tiny_llava", CHAT, TOKEN_PLOTS, "LlavaForConditionalGeneration"),
        # Any served model by name: SigLIP's texts padded to its context and its sigmoid scores on both baselines,
        # SigLIP2's NaFlex patches in the limit, LLaVA-NeXT's anyres through its own Auto class.
        ("image-embed", "siglip", "tiny_siglip", ["--image-size", "64"], {"perf_analyzer.csv"}, "SiglipModel"),
        ("rank", "siglip", "tiny_siglip", ["--image-size", "64", "--texts-per-request", "3"], set(), "SiglipModel"),
        ("text-embed", "siglip", "tiny_siglip", [], set(), "SiglipModel"),
        ("image-embed", "siglip2", "tiny_siglip2", ["--image-size", "80x48"], set(), "Siglip2Model"),
        ("chat", "llava_next", "tiny_llava_next", CHAT, TOKEN_PLOTS, "LlavaNextForConditionalGeneration"),
    ],
)  # fmt: skip
def test_a_two_point_sweep_writes_every_report_file_and_each_parses(
    server: TritonServer,
    model_repository: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    benchmark: str,
    model: str,
    checkpoint: str,
    extra: list[str],
    files: set[str],
    hugging_face: str,
) -> None:
    args = [benchmark, "--model", model, "--url", server.grpc_url, "--repository", str(model_repository), *SHORT]
    args += [*extra, "--checkpoint", str(request.getfixturevalue(checkpoint)), "--results", str(tmp_path)]
    assert vlm_bench([*args, "--name", "run"]) == 0
    out = tmp_path / "run"
    expected = {"report.json", "metrics.csv", "summary.md", "throughput.png", "latency.png", *files}
    assert expected <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    assert [(p["mode"], p["value"]) for p in report["points"]] == [("concurrency", 1), ("concurrency", 2)]
    assert all(p["errors"] == 0 and p["metrics"]["request_throughput"]["avg"] > 0 for p in report["points"])
    assert {b["name"] for b in report["baselines"]} == {"huggingface", "limit"}
    assert report["server"]["served_model"] == model and report["server"]["model"].startswith(model)
    assert bool(report["targets"]) == (model in ("clip", "llava"))  # the issues' targets are the first models'
    described = {b["name"]: b["description"] for b in report["baselines"]}
    assert described["huggingface"].startswith(f"Hugging Face {hugging_face}"), described
    assert all(ratio["vs_huggingface"] > 0 and ratio["vs_limit"] > 0 for ratio in report["ratios"]), report["ratios"]
    assert len(report["rounds"]) == 2  # served windows, baseline windows, served windows, baseline windows
    for round_ in report["rounds"]:
        assert [p["value"] for p in round_["points"]] == [1, 2]
        assert {b["name"] for b in round_["baselines"]} == {"huggingface", "limit"}
    windows = [p["windows"] for p in report["points"]]
    assert windows == [sum(r["points"][i]["windows"] for r in report["rounds"]) for i in range(2)]
    for ratio in report["ratios"]:
        assert len(ratio["vs_huggingface_spread"]["values"]) == 2
        assert ratio["vs_huggingface_spread"]["min"] <= ratio["vs_huggingface"] <= ratio["vs_huggingface_spread"]["max"]
    assert all(p["server_split"] for p in report["points"])
    assert list(csv.DictReader((out / "metrics.csv").open()))
    for name in expected - {"report.json", "metrics.csv", "summary.md"}:
        if name.endswith(".csv"):
            assert len(list(csv.DictReader((out / name).open()))) == 2
        else:
            assert Image.open(out / name).size[0] > 0
    assert "| concurrency 2 |" in (out / "summary.md").read_text()


def test_bad_arguments_get_a_message_naming_the_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert vlm_bench(["clip-image", "--url", "127.0.0.1:1", "--no-baselines", "--concurrency", "0"]) == 2
    assert "--concurrency: expected numbers > 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("benchmark", "model", "message"),
    [
        ("chat", "siglip", "'siglip' is an embedding model (siglip), and this benchmark (chat) needs a chat model"),
        ("rank", "llava_next", "'llava_next' is a chat model (llava_next), and this benchmark (rank) needs an"),
        ("image-embed", "nope", "serves no model named 'nope'; it serves: clip (an embedding model)"),
    ],
)
def test_a_model_the_server_does_not_serve_for_the_task_is_refused_naming_what_it_serves(
    server: TritonServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, benchmark: str, model: str, message: str
) -> None:
    args = [benchmark, "--model", model, "--url", server.grpc_url, "--no-baselines", "--results", str(tmp_path)]
    assert vlm_bench(args) == 2
    assert message in capsys.readouterr().err


def test_through_the_gateway_the_same_points_are_measured_and_compared(server: TritonServer, tmp_path: Path) -> None:
    args = ["clip-text", "--url", server.grpc_url, "--no-baselines", "--through-gateway", *SHORT[:8]]
    assert vlm_bench([*args, "--results", str(tmp_path), "--name", "gateway"]) == 0
    report = json.loads((tmp_path / "gateway" / "report.json").read_text())
    gateway = report["gateway"]
    assert gateway["started_by_bench"] and [p["value"] for p in gateway["points"]] == [1, 2]
    assert all(p["errors"] == 0 and p["metrics"]["request_throughput"]["avg"] > 0 for p in gateway["points"])
    assert all(row["throughput_ratio"] > 0 and row["gateway_cpu_ms_per_request"] > 0 for row in gateway["vs_direct"])
    assert "Through vlm-gateway" in (tmp_path / "gateway" / "summary.md").read_text()


@pytest.mark.parametrize(
    ("benchmark", "rate", "gateway"), [("clip-text", 40.0, False), ("llava", 8.0, False), ("llava", 8.0, True)]
)
def test_the_poisson_mode_sends_at_the_requested_rate_from_one_event_loop(
    server: TritonServer, tmp_path: Path, benchmark: str, rate: float, gateway: bool
) -> None:
    args = [benchmark, "--url", server.grpc_url, "--no-baselines", "--request-rate", str(rate)]
    args += ["--window-seconds", "2", "--max-windows", "3", "--warmup-requests", "2", "--output-tokens", "4"]
    assert (
        vlm_bench([*args, *(["--through-gateway"] if gateway else []), "--results", str(tmp_path), "--name", "rate"])
        == 0
    )
    report = json.loads((tmp_path / "rate" / "report.json").read_text())
    points = [*report["points"], *(report["gateway"]["points"] if gateway else [])]
    assert len(points) == (2 if gateway else 1)
    for point in points:
        assert (point["mode"], point["value"], point["errors"]) == ("request_rate", rate, 0), point.get("first_error")
        metrics = point["metrics"]
        served = metrics["request_throughput"]["avg"] + metrics.get("refused_throughput", {}).get("avg", 0)
        # A rate this low is never refused. Over three 2 s windows (48 arrivals at 8/s) a third of the rate is 2.3
        # standard deviations of a Poisson count; over 1 s windows it was 1.6, and the llava case failed once.
        assert abs(served - rate) < rate / 3, metrics["request_throughput"]
        assert metrics["send_lag"]["p50"] < 1000 / rate, metrics["send_lag"]  # sent on time, not a gap late


@pytest.mark.long  # two vLLM engines (the session server's decoder and vllm serve): minutes on 2 cores
def test_the_vllm_peer_is_started_measured_beside_the_gateway_and_stopped(
    server: TritonServer, tiny_llava: Path, tmp_path: Path
) -> None:
    args = ["llava", "--url", server.grpc_url, "--no-baselines", "--vllm-peer", "--checkpoint", str(tiny_llava)]
    args += ["--concurrency", "1,2", "--window-seconds", "0.2", "--window-requests", "1", "--max-windows", "3"]
    args += ["--warmup-requests", "1", "--alternations", "2", "--image-size", "64", "--input-count", "16"]
    args += ["--prompt-tokens", "8", "--output-tokens", "4", "--results", str(tmp_path), "--name", "peer"]
    assert vlm_bench(args) == 0
    report = json.loads((tmp_path / "peer" / "report.json").read_text())
    jsonschema.validate(report, REPORT_SCHEMA)
    peer = report["vllm_peer"]
    assert peer["started_by_bench"] and peer["version"] and peer["peak_memory_bytes"] > 0
    assert all(counts["equal"] for counts in peer["prompt_tokens"].values()), peer["prompt_tokens"]
    for kind in ("image", "text"):
        for side in ("project", "peer"):
            points = peer["workloads"][kind][side]
            assert [p["value"] for p in points] == [1, 2]
            assert all(p["errors"] == 0 for p in points), [p["first_error"] for p in points]
            assert all(p["metrics"]["output_sequence_length"]["avg"] == 4 for p in points)
    # The goals are judged at concurrency 8 (tokens/s: not swept here) and 1 (TTFT).
    assert [t["measured"] is None for t in peer["targets"]] == [True, False]
    assert "Against vLLM's own OpenAI server" in (tmp_path / "peer" / "summary.md").read_text()
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if {"benchmarks.vllm_serve", str(tiny_llava)} <= set(p.info["cmdline"] or [])
    ]
    assert not left, "vllm serve outlived the run"
