"""TensorRT int8 and fp8 engines built for real from the tiny CLIP's QDQ models (export/qdq.py): each within its
precision's budget of the float32 ONNX model, and recorded as built from the QDQ model. fp8 needs Ada or Hopper."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.families.base import ExportOptions
from export.families.clip.family import CLIP_FAMILY
from export.qdq import QDQ_PRECISIONS, qdq_file
from export.repository import VERSION
from export.tensorrt_engine import BuildSettings
from export.tensorrt_export import build_engines
from export.tensorrt_sidecar import MIN_COMPUTE_CAPABILITY, EngineSidecar, onnx_sha256
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.cuda, pytest.mark.tensorrt, pytest.mark.timeout(900)]


@pytest.fixture(scope="module", params=QDQ_PRECISIONS)
def quantized(
    request: pytest.FixtureRequest, tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    import torch

    precision: str = request.param
    needed = MIN_COMPUTE_CAPABILITY.get(precision)
    if needed is not None and torch.cuda.get_device_capability(0) < needed:
        pytest.skip(f"{precision} needs compute capability {needed}; {torch.cuda.get_device_name(0)} lacks it")
    repository = tmp_path_factory.mktemp(precision) / "model_repository"
    shutil.copytree(REPO_ROOT / "model_repository", repository, ignore=shutil.ignore_patterns("*.onnx*", "*.json"))
    reports = CLIP_FAMILY.export(tiny_clip, repository, ExportOptions(qdq=precision))
    assert all(report.passed for report in reports), [report.summary() for report in reports]
    return precision, repository


def test_an_engine_built_from_the_qdq_model_is_within_its_precisions_budget_of_float32(
    quantized: tuple[str, Path],
) -> None:
    precision, repository = quantized
    outcomes = build_engines(repository, ["clip_vision", "clip_text"], BuildSettings(precision))
    for outcome in outcomes:
        assert outcome.report is not None and outcome.report.passed, outcome.summary()
        assert outcome.report.candidate == f"tensorrt-{precision}" and outcome.report.reference == "onnxruntime"
        version_dir = repository / outcome.component / VERSION
        sidecar = EngineSidecar.read(version_dir)
        assert sidecar.precision == precision
        assert sidecar.source_onnx_sha256 == onnx_sha256(version_dir / qdq_file(precision))
