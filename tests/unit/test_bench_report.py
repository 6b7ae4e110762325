"""benchmarks.report, benchmarks.metrics and benchmarks.targets: the document's schema, its figures and the files
derived from it, built from requests with known timings."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from benchmarks.metrics import compute_metrics
from benchmarks.report import (
    REPORT_SCHEMA,
    add_gateway,
    add_vllm_peer,
    build_report,
    markdown,
    write_csv,
    write_json,
    write_markdown,
    write_perf_analyzer_csv,
)
from benchmarks.statistics import FIELDS
from benchmarks.workloads import Sample

SPLIT = {
    "clip_image_embed": {"requests": 10, "average_batch": 1.0, "queue_us": 5.0, "compute_input_us": 1.0,
                         "compute_infer_us": 900.0, "compute_output_us": 2.0},
    "clip_preprocess": {"requests": 10, "average_batch": 1.0, "queue_us": 10.0, "compute_input_us": 1.0,
                        "compute_infer_us": 300.0, "compute_output_us": 1.0},
    "clip_vision": {"requests": 10, "average_batch": 2.5, "queue_us": 100.0, "compute_input_us": 1.0,
                    "compute_infer_us": 500.0, "compute_output_us": 1.0},
}  # fmt: skip


def requests_every(interval: float, count: int, latency: float, images: int = 1) -> list[Sample]:
    return [Sample(i * interval, i * interval + latency, images=images) for i in range(count)]


def image_point(concurrency: int, per_second: int) -> dict[str, Any]:
    latency = 0.01 * concurrency
    samples = requests_every(1 / per_second, per_second * 3, latency)
    spans = [(latency + i, latency + i + 1) for i in range(3)]  # windows hold the requests that complete in them
    return {
        "mode": "concurrency",
        "value": concurrency,
        "stable": True,
        "windows": 3,
        "errors": 0,
        "first_error": None,
        "metrics": compute_metrics(samples, spans, images=True, generation=False),
        "server_split": SPLIT,
    }


def baseline(name: str, per_second: int, batch: int) -> dict[str, Any]:
    samples = requests_every(1 / per_second, per_second * 2, 0.05, images=batch)
    return {
        "name": name,
        "description": name,
        "batch_size": batch,
        "requests": len(samples),
        "metrics": compute_metrics(samples, [(0.05, 2.05)], images=True, generation=False),
    }


@pytest.fixture
def report() -> dict[str, Any]:
    config = {"protocol": "grpc", "image_format": "jpeg", "image_size": "640x480", "checkpoint": "ckpt"}
    server = {
        "url": "127.0.0.1:8001",
        "protocol": "grpc",
        "model": "clip_image_embed",
        "peak_memory_bytes": 2**30,
        "peak_pss_bytes": 2**29,
        "encoder_precisions": {"clip_text": "int8", "clip_vision": "int8"},
    }
    points = [image_point(1, 10), image_point(8, 40)]
    baselines = [baseline("huggingface", 10, 1), baseline("limit", 4, 8)]  # 10 and 32 images/s
    return build_report("clip-image", config, server, points, baselines, {"cpu_count": 2})


def test_a_report_matches_the_schema_and_survives_a_json_round_trip(report: dict[str, Any], tmp_path: Path) -> None:
    jsonschema.validate(report, REPORT_SCHEMA)
    assert json.loads(write_json(report, tmp_path).read_text()) == report


def test_a_report_missing_a_metric_field_fails_the_schema(report: dict[str, Any]) -> None:
    del report["points"][0]["metrics"]["request_latency"]["p99"]
    with pytest.raises(jsonschema.ValidationError, match="p99"):
        jsonschema.validate(report, REPORT_SCHEMA)


def test_throughputs_come_from_windows_and_latencies_from_requests(report: dict[str, Any]) -> None:
    metrics = report["points"][1]["metrics"]
    assert metrics["request_throughput"]["avg"] == pytest.approx(40)
    assert metrics["image_throughput"]["avg"] == pytest.approx(40)
    assert metrics["request_latency"]["p50"] == pytest.approx(80)  # ms
    assert set(metrics) == {"request_throughput", "request_latency", "image_throughput", "image_latency"}


def test_ratios_and_targets_divide_served_by_baseline(report: dict[str, Any]) -> None:
    at_8 = report["ratios"][1]
    assert (at_8["vs_huggingface"], at_8["vs_limit"]) == pytest.approx((4.0, 1.25))
    huggingface, limit = report["targets"]
    assert (limit["measured"], limit["met"]) == (pytest.approx(1.25), True)
    assert (huggingface["measured"], huggingface["met"]) == (pytest.approx(4.0), True)


def test_each_alternation_gives_its_own_ratio_and_targets_are_judged_on_their_median(report: dict[str, Any]) -> None:
    # Three alternations: the served side steady, Hugging Face at 10, 16 and 40 images/s (a noisy neighbour).
    rounds = [
        {"points": report["points"], "baselines": [baseline("huggingface", rate, 1), baseline("limit", 4, 8)]}
        for rate in (10, 16, 40)
    ]
    rebuilt = build_report("clip-image", report["input_config"], report["server"], report["points"],
                           report["baselines"], {}, rounds)  # fmt: skip
    at_8 = rebuilt["ratios"][1]["vs_huggingface_spread"]
    assert at_8["values"] == pytest.approx([4.0, 2.5, 1.0])
    assert (at_8["median"], at_8["min"], at_8["max"]) == pytest.approx((2.5, 1.0, 4.0))
    huggingface = rebuilt["targets"][0]
    assert huggingface["requirement"] == "served / huggingface >= 2"
    assert (huggingface["measured"], huggingface["spread"], huggingface["alternations"]) == (
        pytest.approx(2.5),
        pytest.approx([1.0, 4.0]),
        3,
    )
    assert huggingface["met"] is True and huggingface["met_in_every_alternation"] is False
    jsonschema.validate(rebuilt, REPORT_SCHEMA)
    assert "2.50x (1.00-4.00)" in markdown(rebuilt)


def test_a_target_whose_conditions_the_run_did_not_meet_is_not_measured(report: dict[str, Any]) -> None:
    report["input_config"]["protocol"] = "http"
    rebuilt = build_report("clip-image", report["input_config"], report["server"], report["points"],
                           report["baselines"], {})  # fmt: skip
    assert all(t["met"] is None and "protocol=grpc" in t["note"] for t in rebuilt["targets"])


def test_generation_metrics_follow_genai_perf_definitions() -> None:
    samples = [Sample(0.0, 1.0, 1, first_token=0.1, output_tokens=10), Sample(0.5, 1.5, 1, 0.7, 5)]
    metrics = compute_metrics(samples, [(0.0, 2.0)], images=False, generation=True)
    assert metrics["time_to_first_token"]["avg"] == pytest.approx(150)  # (100 + 200) / 2 ms
    assert metrics["inter_token_latency"]["min"] == pytest.approx(100)  # 900 ms / 9
    assert metrics["inter_token_latency"]["max"] == pytest.approx(200)  # 800 ms / 4
    assert metrics["output_token_throughput"]["avg"] == pytest.approx(7.5)


def test_csv_files_and_markdown_carry_every_point_and_baseline(report: dict[str, Any], tmp_path: Path) -> None:
    rows = list(csv.DictReader(write_csv(report, tmp_path).open()))
    assert {r["source"] for r in rows} == {"served", "huggingface", "limit"}
    assert set(FIELDS) <= set(rows[0])
    perf = list(csv.DictReader(write_perf_analyzer_csv(report, tmp_path).open()))
    assert [row["Concurrency"] for row in perf] == ["1", "8"]
    assert perf[0]["Server Compute Infer"] == "800"  # the ensemble's steps, not the ensemble's own total
    text = write_markdown(report, tmp_path).read_text()
    assert text == markdown(report)
    assert (
        "| concurrency 8 |" in text
        and "4.00x" in text
        and "**met**" in text
        and "1,024 MiB (1.074 GB) resident" in text
        and "512 MiB" in text
        and "encoders at int8; server peak memory" in text
    )


def test_points_through_the_gateway_are_compared_with_the_direct_ones(report: dict[str, Any], tmp_path: Path) -> None:
    slower = [image_point(1, 9), image_point(8, 38)]  # 90% and 95% of the direct throughput
    for point in slower:  # and 2 ms more per request
        point["metrics"] = compute_metrics(
            requests_every(1 / point["metrics"]["request_throughput"]["avg"], 30, 0.01 * point["value"] + 0.002),
            [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)],
            images=True,
            generation=False,
        )
    add_gateway(report, {"url": "http://127.0.0.1:9000", "started_by_bench": True}, slower)
    rows = report["gateway"]["vs_direct"]
    assert [r["value"] for r in rows] == [1, 8]
    assert rows[1]["added_latency_p50_ms"] == pytest.approx(2.0)
    (target,) = report["gateway"]["targets"]
    assert "concurrency 8" in target["target"] and target["met"] == (target["measured"] >= 0.9)
    assert rows[1]["throughput_ratio"] == pytest.approx(target["measured"])
    jsonschema.validate(report, REPORT_SCHEMA)
    assert "gateway" in {r["source"] for r in csv.DictReader(write_csv(report, tmp_path).open())}
    assert "Through vlm-gateway (http://127.0.0.1:9000)" in markdown(report)


def llava_point(concurrency: int, tokens_per_s: float, ttft_s: float) -> dict[str, Any]:
    """Requests of 8 tokens, one completing every 8 / tokens_per_s seconds over a 4 s window."""
    interval = 8 / tokens_per_s
    samples = [Sample(i * interval, i * interval + 0.5, 1, i * interval + ttft_s, 8, 40) for i in range(40)]
    spans = [(0.5, 0.5 + 40 * interval)]
    return {
        "mode": "concurrency",
        "value": concurrency,
        "stable": True,
        "windows": 1,
        "errors": 0,
        "first_error": None,
        "metrics": compute_metrics(samples, spans, images=True, generation=True),
        "server_split": {},
    }


def peer_sides(project: tuple[float, float], peer: tuple[float, float]) -> dict[str, list[dict[str, Any]]]:
    """Concurrency 1 and 8 on each side: (tokens/s, TTFT s) at 8 and 1 (the other figure fixed)."""
    return {
        "project": [llava_point(1, 50, project[1]), llava_point(8, project[0], 0.2)],
        "peer": [llava_point(1, 50, peer[1]), llava_point(8, peer[0], 0.2)],
    }


def test_the_vllm_peer_ratios_are_this_project_over_vllm_serve_per_alternation(
    report: dict[str, Any], tmp_path: Path
) -> None:
    # Three alternations; this project at 200 tokens/s and 100 ms TTFT throughout, vllm serve varying.
    rounds = [
        {"image": peer_sides((200, 0.1), (peer_rate, peer_ttft)), "text": peer_sides((200, 0.1), (200, 0.1))}
        for peer_rate, peer_ttft in ((100, 0.05), (160, 0.1), (400, 0.2))
    ]
    pooled = {"image": peer_sides((200, 0.1), (220, 0.1)), "text": peer_sides((200, 0.1), (200, 0.1))}
    peer = {
        "url": "http://127.0.0.1:8000",
        "started_by_bench": True,
        "version": "0.32.0",
        "prompt_tokens": {"image": {"project": 55, "vllm_serve": 55, "equal": True},
                          "text": {"project": 35, "vllm_serve": 34, "equal": False}},
        "peak_memory_bytes": 2**31,
        "settings": {"dtype": "float32"},
    }  # fmt: skip
    report["server"]["encoder_precisions"] = {"llava_vision": "int8", "llava_projector": "int8"}
    add_vllm_peer(report, peer, pooled, rounds)
    ratios = {(r["workload"], r["value"], r["metric"]): r for r in report["vllm_peer"]["ratios"]}
    throughput = ratios[("image", 8, "output_token_throughput")]
    assert throughput["field"] == "avg" and throughput["values"] == pytest.approx([2.0, 1.25, 0.5])
    assert (throughput["median"], throughput["min"], throughput["max"]) == pytest.approx((1.25, 0.5, 2.0))
    ttft = ratios[("image", 1, "time_to_first_token")]
    assert ttft["field"] == "p50" and ttft["values"] == pytest.approx([2.0, 1.0, 0.5])
    assert ratios[("text", 8, "output_token_throughput")]["median"] == pytest.approx(1.0)
    headline = [(r["workload"], r["value"], r["metric"]) for r in report["vllm_peer"]["headline"]]
    assert headline == [("image", 8, "output_token_throughput"), ("image", 1, "time_to_first_token"),
                        ("text", 8, "output_token_throughput"), ("text", 1, "time_to_first_token")]  # fmt: skip
    goals = [(t["target"], t["measured"], t["met"]) for t in report["vllm_peer"]["targets"]]
    assert goals == [
        ("llava (image requests), concurrency 8: output_token_throughput avg vs vllm serve", pytest.approx(1.25), True),
        ("llava (image requests), concurrency 1: time_to_first_token p50 vs vllm serve", pytest.approx(1.0), True),
    ]
    jsonschema.validate(report, REPORT_SCHEMA)
    assert json.loads(write_json(report, tmp_path).read_text()) == report

    rows = list(csv.DictReader(write_csv(report, tmp_path).open()))
    sources = {r["source"] for r in rows}
    assert {"vlm-gateway:image", "vllm-serve:image", "vlm-gateway:text", "vllm-serve:text"} <= sources
    (ratio,) = [r for r in rows if r["source"] == "vlm-gateway/vllm-serve:image" and r["value"] == "8"
                and r["metric"] == "output_token_throughput"]  # fmt: skip
    assert ratio["unit"] == "ratio of avg" and float(ratio["p50"]) == pytest.approx(1.25)
    assert (float(ratio["min"]), float(ratio["max"])) == pytest.approx((0.5, 2.0))

    text = markdown(report)
    assert (
        "Against vLLM's own OpenAI server (`vllm serve`, vLLM 0.32.0, http://127.0.0.1:8000) on the same checkpoint "
        "(this project's encoders at int8, `vllm serve`'s whole model at float32)" in text
    )
    assert "| image | concurrency 8 |" in text and "1.25x (0.50-2.00)" in text
    assert "**image, concurrency 8**: output_token_throughput avg this project / vllm serve 1.25x" in text
    assert "35 through vlm-gateway, 34 on vllm serve (DIFFERENT" in text
    assert (
        "**met** llava (image requests), concurrency 8: output_token_throughput avg vs vllm serve: 1.25x "
        "(0.50-2.00 over 3 alternations) (needs this project / vllm serve >= 1.2)" in text
    )
    assert "vllm serve peak memory: 2,048 MiB" in text
    assert [row["workload"] for row in report["vllm_peer"]["time_split"]] == ["image", "image", "text", "text"]
    assert "Where the time goes" in text and "| image | concurrency 1 | 100 | 400 | 100 | 400 | - |" in text


def test_a_video_run_names_its_clips_and_no_images(report: dict[str, Any]) -> None:
    report["input_config"].update(images_per_request=0, video_frames=4, videos_per_request=1)
    header = markdown(report).splitlines()[2]
    assert "1 video(s) of 4 frames at 1 fps; " in header and "images 640x480" not in header
    report["input_config"].update(images_per_request=1, video_frames=0)
    header = markdown(report).splitlines()[2]
    assert "images 640x480 jpeg; " in header and "video" not in header
