"""TensorRT engines for the tiny checkpoints' exports, built for real: every encoder in fp16 within its
stated tolerance of ONNX Runtime, a bf16 build, the sidecar of what was built, a reused timing cache,
current engines kept, and an engine from another TensorRT version refused by name."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from export.parity import ParityReport
from export.repository import VERSION
from export.tensorrt_engine import BuildSettings, TensorRTRunner, current_host
from export.tensorrt_export import EngineOutcome, build_engines, exported_components
from export.tensorrt_sidecar import ENGINE_FILE, EngineMismatchError, EngineSidecar

pytestmark = [pytest.mark.cuda, pytest.mark.tensorrt]


@pytest.fixture(scope="module")
def repository(
    repository_copy: Path,
    exported_clip: list[ParityReport],
    exported_llava: list[ParityReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    copy = tmp_path_factory.mktemp("engines") / "model_repository"
    shutil.copytree(repository_copy, copy, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def timing_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensorrt") / "timing.cache"


@pytest.fixture(scope="module")
def fp16_outcomes(repository: Path, timing_cache: Path) -> list[EngineOutcome]:
    return build_engines(repository, settings=BuildSettings("fp16", timing_cache=timing_cache))


def test_every_exported_encoder_gets_an_fp16_engine_within_its_tolerance(
    fp16_outcomes: list[EngineOutcome], repository: Path
) -> None:
    assert [outcome.component for outcome in fp16_outcomes] == exported_components(repository)
    for outcome in fp16_outcomes:
        assert outcome.report is not None, outcome.summary()
        assert outcome.report.passed, outcome.summary()
        assert outcome.report.candidate == "tensorrt-fp16" and outcome.report.reference == "onnxruntime"
        assert (repository / outcome.component / VERSION / ENGINE_FILE).stat().st_size > 0


def test_the_sidecar_records_this_tensorrt_gpu_precision_and_profile(
    fp16_outcomes: list[EngineOutcome], repository: Path
) -> None:
    host = current_host()
    sidecar = EngineSidecar.read(repository / "clip_vision" / VERSION)
    assert (sidecar.tensorrt_version, sidecar.gpu_name, sidecar.compute_capability) == (
        host.tensorrt_version,
        host.gpu_name,
        host.compute_capability,
    )
    assert sidecar.precision == "fp16"
    assert sidecar.profiles["pixel_values"]["max"][0] == 32


def test_the_timing_cache_is_written_and_current_engines_are_kept(
    fp16_outcomes: list[EngineOutcome], repository: Path, timing_cache: Path
) -> None:
    assert timing_cache.stat().st_size > 0
    again = build_engines(repository, settings=BuildSettings("fp16", timing_cache=timing_cache))
    assert all(outcome.report is None for outcome in again), [outcome.summary() for outcome in again]


def test_a_bf16_engine_passes_its_looser_tolerance(fp16_outcomes: list[EngineOutcome], repository: Path) -> None:
    (outcome,) = build_engines(repository, ["clip_text"], BuildSettings("bf16"))
    assert outcome.report is not None and outcome.report.passed, outcome.summary()
    assert EngineSidecar.read(repository / "clip_text" / VERSION).precision == "bf16"


def test_an_engine_recorded_as_built_by_another_tensorrt_is_refused_naming_both(
    fp16_outcomes: list[EngineOutcome], repository: Path, tmp_path: Path
) -> None:
    engine_dir = tmp_path / "clip_vision"
    shutil.copytree(repository / "clip_vision" / VERSION, engine_dir, symlinks=True)
    sidecar = EngineSidecar.read(engine_dir)
    dataclasses.replace(sidecar, tensorrt_version="9.0.0").write(engine_dir)
    with pytest.raises(EngineMismatchError) as raised, TensorRTRunner(engine_dir):
        pass
    assert "TensorRT 9.0.0" in str(raised.value) and f"TensorRT {sidecar.tensorrt_version}" in str(raised.value)
