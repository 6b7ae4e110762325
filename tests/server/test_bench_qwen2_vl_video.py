"""``vlm-bench chat --video-frames`` against ``vllm serve`` on tiny-qwen2-vl: both servers take the clips natively
(video_url parts), count the same prompt tokens, and the report names the media workload ``video``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from benchmarks.cli import main as vlm_bench
from export.cli import main as vlm_export

pytestmark = [pytest.mark.long, pytest.mark.timeout(900)]  # two vLLM engines: minutes on 2 cores


def test_the_video_workload_runs_against_vllm_serve_with_equal_prompt_tokens(
    tiny_qwen2_vl: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "model_repository"
    with contextlib.redirect_stdout(None):
        assert vlm_export(["model", "--checkpoint", str(tiny_qwen2_vl), "--repository", str(repository)]) == 0
    args = ["chat", "--model", "qwen2_vl", "--serve", "--repository", str(repository), "--no-baselines"]
    args += ["--vllm-peer", "--checkpoint", str(tiny_qwen2_vl), "--video-frames", "4", "--images-per-request", "0"]
    args += ["--image-sizes", "64x48,120x96", "--concurrency", "1,2", "--window-seconds", "0.2"]
    args += ["--window-requests", "1", "--max-windows", "3", "--warmup-requests", "1", "--alternations", "1"]
    args += ["--input-count", "64", "--prompt-tokens", "8", "--output-tokens", "4", "--results", str(tmp_path)]
    assert vlm_bench([*args, "--name", "video"]) == 0
    peer = json.loads((tmp_path / "video" / "report.json").read_text())["vllm_peer"]
    assert set(peer["workloads"]) == {"video", "text"}
    assert all(counts["equal"] for counts in peer["prompt_tokens"].values()), peer["prompt_tokens"]
    for side in ("project", "peer"):
        points = peer["workloads"]["video"][side]
        assert all(p["errors"] == 0 for p in points), [p["first_error"] for p in points]
        assert all(p["metrics"]["output_sequence_length"]["avg"] == 4 for p in points)
    # A clip's two frame groups put more tokens in the prompt than its question alone.
    lengths = {
        kind: sides["peer"][0]["metrics"]["input_sequence_length"]["min"] for kind, sides in peer["workloads"].items()
    }
    assert lengths["video"] > lengths["text"] + 4
    split = {(row["workload"], row["value"]): row for row in peer["time_split"]}
    assert "qwen2_vl_vision" in split[("video", 1)]["project_steps"]
