"""The engine sidecar and the load check, with fabricated sidecars: an engine from another TensorRT version
or GPU generation is refused with both sides named; a current one is recognised as current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from export.tensorrt_sidecar import (
    ENGINE_FILE,
    SIDECAR_FILE,
    EngineHost,
    EngineMismatchError,
    EngineSidecar,
    check_loadable,
    is_current,
    onnx_sha256,
)

H100 = EngineHost(tensorrt_version="10.5.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")


def sidecar(**changes: object) -> EngineSidecar:
    built = EngineSidecar(
        component="clip_vision",
        tensorrt_version="10.5.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp16",
        workspace_bytes=4 << 30,
        profiles={"pixel_values": {"min": [1, 3, 224, 224], "opt": [16, 3, 224, 224], "max": [32, 3, 224, 224]}},
        source_onnx_sha256="ab" * 32,
    )
    return dataclasses.replace(built, **changes)


def test_a_sidecar_round_trips_through_its_json_file(tmp_path: Path) -> None:
    written = sidecar()
    path = written.write(tmp_path)
    assert path.name == SIDECAR_FILE
    assert EngineSidecar.read(tmp_path) == written


def test_an_engine_from_the_same_tensorrt_on_the_same_gpu_generation_loads() -> None:
    check_loadable(sidecar(), H100)
    check_loadable(sidecar(gpu_name="NVIDIA H200"), dataclasses.replace(H100, gpu_name="NVIDIA H200"))


def test_an_engine_from_another_tensorrt_version_is_refused_naming_both_versions() -> None:
    with pytest.raises(EngineMismatchError) as raised:
        check_loadable(sidecar(tensorrt_version="10.3.0"), H100)
    message = str(raised.value)
    assert "TensorRT 10.3.0" in message and "TensorRT 10.5.0" in message
    assert "clip_vision" in message and "vlm-export engine" in message


def test_an_engine_for_another_compute_capability_is_refused_naming_both_gpus() -> None:
    ampere = EngineHost("10.5.0", "NVIDIA A100-SXM4-80GB", "8.0")
    with pytest.raises(EngineMismatchError) as raised:
        check_loadable(sidecar(), ampere)
    assert "compute capability 9.0 (NVIDIA H100" in str(raised.value)
    assert "this GPU is 8.0 (NVIDIA A100" in str(raised.value)


def test_a_missing_sidecar_is_refused_with_a_rebuild_hint(tmp_path: Path) -> None:
    (tmp_path / ENGINE_FILE).write_bytes(b"plan")
    with pytest.raises(EngineMismatchError, match=r"no engine\.json beside it"):
        EngineSidecar.read(tmp_path)


def test_a_sidecar_of_another_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / SIDECAR_FILE).write_text('{"format": 99}')
    with pytest.raises(EngineMismatchError, match="not format 1"):
        EngineSidecar.read(tmp_path)


def test_a_sidecar_refuses_an_unknown_precision_and_an_incomplete_profile() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        sidecar(precision="int4")
    with pytest.raises(ValueError, match="needs min, opt and max"):
        sidecar(profiles={"pixel_values": {"min": [1], "max": [2]}})


@pytest.mark.parametrize(
    "change",
    [
        {"tensorrt_version": "10.6.0"},
        {"compute_capability": "8.9"},
        {"precision": "bf16"},
        {"workspace_bytes": 1 << 30},
        {"source_onnx_sha256": "cd" * 32},
        {"profiles": {"pixel_values": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}}},
    ],
)
def test_an_engine_is_stale_when_anything_that_shapes_it_changed(change: dict) -> None:
    assert is_current(sidecar(), sidecar())
    assert not is_current(sidecar(**change), sidecar())


def test_the_gpu_name_alone_does_not_make_an_engine_stale() -> None:
    assert is_current(sidecar(gpu_name="NVIDIA H100 PCIe"), sidecar())


def test_the_onnx_hash_covers_the_external_weights(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    (tmp_path / "model.onnx.data").write_bytes(b"weights")
    before = onnx_sha256(graph)
    (tmp_path / "model.onnx.data").write_bytes(b"other weights")
    assert onnx_sha256(graph) != before
