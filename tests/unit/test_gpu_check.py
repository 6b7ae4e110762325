"""The GPU check's steps, run for real on the CPU so they cannot rot: ``benchmarks/gpu_check.sh`` itself with
GPU_CHECK_TINY=1 (the tiny presets, ``--device cpu``) where tritonclient and vLLM cannot be imported, as on the lent
GPU machine; and the precision module's budget and failure paths on a small module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_components import Component, components
from benchmarks.gpu_precision import DTYPES, measure, parse_args, run
from export.families.clip.spec import CLIP_VISION

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {
    *("clip_vision", "clip_text", "llava_vision", "llava_projector"),
    *("siglip_vision", "siglip_text", "siglip2_vision", "siglip2_text"),
    "qwen2_5_vl_vision",
}
OUTPUT_FILES = {"summary.json", "precision.json", "precision.md", "gpu_check.log"}


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    missing = tmp_path_factory.mktemp("missing")
    for package in ("tritonclient", "vllm"):  # what the lent GPU machine lacks
        (missing / package).mkdir()
        (missing / package / "__init__.py").write_text(f"raise ImportError('{package} is not installed')\n")
    out = tmp_path_factory.mktemp("out")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3: this interpreter
        "PYTHONPATH": str(missing),
        "GPU_CHECK_TINY": "1",
    }
    env.pop("OUT", None)
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=170
    )
    return result, out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_check_passes_leaving_only_small_files_directly_in_the_output_folder(check) -> None:
    result, out = check
    assert result.returncode == 0, (out / "gpu_check.log").read_text()[-4000:]
    assert {p.name for p in out.iterdir()} == OUTPUT_FILES
    assert all(p.is_file() and p.stat().st_size < 1_000_000 for p in out.iterdir())


def test_the_summary_records_the_environment_every_step_and_why_steps_were_skipped(check) -> None:
    _, out = check
    summary = _json(out / "summary.json")
    assert summary["passed"] is True
    assert summary["environment"]["torch"] == torch.__version__ and summary["environment"]["gpu"] is None
    assert summary["steps"]["environment"]["status"] == summary["steps"]["precision"]["status"] == "passed"
    assert "tritonclient is not importable" in summary["steps"]["gpu_tests"]["reason"]
    assert summary["served"] == {"skipped": "no NGC tritonserver at /opt/tritonserver"}
    assert summary["steps"]["bench_llava"] == {"status": "skipped", "reason": summary["served"]["skipped"]}
    assert summary["limits_s"] < 480  # every step's limit and kill grace: the check fits 8 minutes
    precision = {key: summary["precision"][key] for key in ("results", "table", "complete", "within_budget")}
    assert precision == {"results": "precision.json", "table": "precision.md", "complete": True, "within_budget": True}


def test_every_exported_component_is_compared_with_float32_and_timed_in_each_precision(check) -> None:
    _, out = check
    precision = _json(out / "precision.json")
    assert precision["environment"]["device"] == "cpu" and precision["batch_sizes"] == [1, 2]
    presets = ("tiny-clip", "tiny-llava", "tiny-siglip", "tiny-siglip2", "tiny-qwen2.5-vl")
    rows = [row for preset in presets for row in precision["presets"][preset]["rows"]]
    assert {(row["component"], row["dtype"]) for row in rows} == {(c, d) for c in COMPONENTS for d in DTYPES}
    for row in rows:
        if row["status"] == "skipped":  # this torch has no CPU kernel for that precision
            assert row["dtype"] != "float32" and row["reason"].startswith("not supported on cpu")
            continue
        assert set(row["throughput"]) == {"1", "2"}
        assert all(rate["items_per_s"] > 0 for rate in row["throughput"].values())
        assert row["min_cosine"] <= row["mean_cosine"] <= 1
        if row["dtype"] == "float32":
            # The same weights copied elsewhere in memory: identical up to an ulp (CPU kernels pick code paths
            # by alignment).
            assert row["max_abs_diff"] <= 1e-6 and row["min_cosine"] == pytest.approx(1, abs=1e-12)
        else:
            assert row["min_cosine"] > 0.9 and 0 < row["max_abs_diff"] < 1


def test_the_table_has_a_row_per_component_and_precision(check) -> None:
    _, out = check
    lines = (out / "precision.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| tiny-")]
    assert len(rows) == len(COMPONENTS) * len(DTYPES)
    assert "items/s @1" in lines[2] and "items/s @2" in lines[2]


def test_a_checkpoint_no_family_serves_is_refused_naming_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    with pytest.raises(ValueError, match=r"no family serves; supported: CLIPModel \(clip\)"):
        components(tmp_path, torch.device("cpu"))


def _linear_component() -> Component:
    torch.manual_seed(0)
    module = torch.nn.Linear(8, 4).eval()
    feed = lambda n: {"input": torch.randn(n, 8)}  # noqa: E731
    return Component(CLIP_VISION, module, "images", feed, feed)


def test_past_the_time_budget_parity_is_still_checked_and_timing_is_skipped(tmp_path: Path) -> None:
    args = parse_args(["--out", str(tmp_path), "--device", "cpu", "--batch-sizes", "1,2"])
    rows = measure(_linear_component(), args, torch.device("cpu"), deadline=time.monotonic() - 1)
    measured = [row for row in rows if row["status"] == "measured"]
    assert measured and measured[0]["dtype"] == "float32"
    for row in measured:
        assert row["min_cosine"] > 0.9
        assert row["throughput"] == {"1": {"skipped": "time budget spent"}, "2": {"skipped": "time budget spent"}}


def test_a_preset_that_cannot_be_built_is_reported_and_makes_the_run_incomplete(tmp_path: Path) -> None:
    summary = run(parse_args(["--out", str(tmp_path), "--device", "cpu", "--presets", "no-such-preset"]))
    assert summary["complete"] is False
    assert "unknown preset 'no-such-preset'" in summary["presets"]["no-such-preset"]["error"]
    assert _json(tmp_path / "precision.json") == summary
    assert "no-such-preset | error: KeyError" in (tmp_path / "precision.md").read_text()
