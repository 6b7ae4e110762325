"""The repository side of ``vlm-export engine`` that runs without TensorRT: which components it builds, the
parity feeds it checks them on (real exports, real ONNX Runtime), keeping current engines, and the clear
refusal on a host without TensorRT."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.cli import main as vlm_export
from export.families.llava.spec import LLAVA_VISION, LLAVA_VISION_FUSED
from export.precision import budget
from export.repository import VERSION
from export.tensorrt_engine import BuildSettings, TensorRTUnavailableError
from export.tensorrt_export import (
    build_component_engine,
    component_spec,
    exported_components,
    parity_feeds,
    plan_engine,
)
from export.tensorrt_sidecar import ENGINE_FILE, EngineHost
from serving.manifest import ONNX_FILE, ComponentManifest
from serving.onnx_runner import OnnxRunner
from tests.conftest import NAMED_CLIP

HOST = EngineHost("10.5.0", "NVIDIA H100 80GB HBM3", "9.0")
NO_TENSORRT = importlib.util.find_spec("tensorrt") is None


# The default names first, then the repository's named checkpoint (tests/conftest.py: NAMED_CLIP).
ENCODERS = [
    *("clip_vision", "clip_text", "llava_vision", "llava_projector", "llava_next_vision", "llava_next_projector"),
    *("siglip_vision", "siglip_text", "siglip2_vision", "siglip2_text"),
    *(f"{NAMED_CLIP}_vision", f"{NAMED_CLIP}_text"),
]


@pytest.fixture(scope="module")
def exported(model_repository: Path) -> Path:
    return model_repository


def test_every_exported_encoder_has_parity_feeds(exported: Path) -> None:
    assert exported_components(exported) == ENCODERS
    assert set(parity_feeds(exported)) == set(exported_components(exported))


def test_a_named_checkpoints_encoders_are_found_by_their_names_through_the_repositorys_tags(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / f"{NAMED_CLIP}_text" / VERSION)
    spec = component_spec(f"{NAMED_CLIP}_text", manifest, exported)
    assert spec.name == f"{NAMED_CLIP}_text" and spec.dynamic_axes  # CLIP's text encoder, under the name
    with pytest.raises(ValueError, match="no exported encoder of that name"):
        component_spec(f"{NAMED_CLIP}_text", manifest)  # without the repository only the default names are known


def test_siglip_text_feeds_are_padded_to_the_whole_context_as_served(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / "siglip_text" / VERSION)
    feed = parity_feeds(exported)["siglip_text"](exported, manifest, (4,))[0]
    assert feed["input_ids"].shape == (4, manifest.inputs[0].shape[0])
    assert len(set(feed["attention_mask"].sum(axis=1).tolist())) > 1  # real texts of varied length, then padding


def test_siglip2_vision_feeds_mix_patch_grids_within_the_exported_budget(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / "siglip2_vision" / VERSION)
    feed = parity_feeds(exported)["siglip2_vision"](exported, manifest, (4,))[0]
    assert [feed[t.name].shape[1:] for t in manifest.inputs] == [tuple(t.shape) for t in manifest.inputs]
    assert [str(feed[t.name].dtype) for t in manifest.inputs] == [t.dtype for t in manifest.inputs]
    grids = feed["spatial_shapes"]
    assert len({tuple(grid) for grid in grids}) == 4 and (grids.prod(axis=1) <= manifest.inputs[0].shape[0]).all()
    np.testing.assert_array_equal(feed["pixel_attention_mask"].sum(axis=1), grids.prod(axis=1))


@pytest.mark.parametrize("name", ENCODERS)
def test_parity_feeds_match_the_exported_inputs_at_the_spec_batch_sizes(exported: Path, name: str) -> None:
    manifest = ComponentManifest.read(exported / name / VERSION)
    spec = component_spec(name, manifest, exported)
    feeds = parity_feeds(exported)[name](exported, manifest, spec.parity_batch_sizes)
    assert [next(iter(feed.values())).shape[0] for feed in feeds] == list(spec.parity_batch_sizes)
    for feed in feeds:
        for tensor in manifest.inputs:
            assert feed[tensor.name].dtype == np.dtype(tensor.dtype)
            sizes = zip(feed[tensor.name].shape[1:], tensor.shape, strict=True)
            assert all(size == declared or (declared == -1 and size > 0) for size, declared in sizes)


def test_text_feeds_are_tokenised_sentences_padded_after_their_end(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / "clip_text" / VERSION)
    feed = parity_feeds(exported)["clip_text"](exported, manifest, (4,))[0]
    mask = feed["attention_mask"]
    lengths = mask.sum(axis=1)
    assert len(set(lengths.tolist())) > 1  # varied lengths, one truncated to the full context
    assert lengths.max() == mask.shape[1]
    for row, length in zip(mask, lengths, strict=True):
        assert row[:length].all() and not row[length:].any()  # a prefix, as the tokenizer makes it


def test_projector_feeds_are_the_exported_vision_towers_features(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / "llava_projector" / VERSION)
    vision = exported / "llava_vision" / VERSION
    pixels = parity_feeds(exported)["llava_vision"](exported, ComponentManifest.read(vision), (2,))[0]
    with OnnxRunner(vision / ONNX_FILE) as runner:
        expected = runner.run(pixels)["image_features"]
    features = parity_feeds(exported)["llava_projector"](exported, manifest, (2,))[0]["image_features"]
    np.testing.assert_array_equal(features, expected)


def test_the_fused_and_plain_vision_exports_are_told_apart_by_their_outputs(exported: Path) -> None:
    manifest = ComponentManifest.read(exported / "llava_vision" / VERSION)
    assert component_spec("llava_vision", manifest) is LLAVA_VISION
    fused = dataclasses.replace(manifest, outputs=[dataclasses.replace(manifest.outputs[0], name="image_embeds")])
    assert component_spec("llava_vision", fused) is LLAVA_VISION_FUSED


def test_reduced_precision_engines_are_held_to_the_specs_stated_tolerances(exported: Path) -> None:
    spec = component_spec("clip_vision", ComponentManifest.read(exported / "clip_vision" / VERSION))
    assert budget(spec, "fp32") == spec.tolerance
    assert budget(spec, "fp16").max_abs_diff > spec.tolerance.max_abs_diff
    assert budget(spec, "bf16").min_cosine < budget(spec, "fp16").min_cosine
    assert (budget(spec, "int8"), budget(spec, "fp8")) == (spec.int8_tolerance, spec.fp8_tolerance)
    with pytest.raises(ValueError, match="precision must be one of"):
        budget(spec, "int4")


def test_a_current_engine_is_kept_without_touching_tensorrt(exported: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(exported / "clip_vision", repository / "clip_vision", symlinks=True)
    version_dir = repository / "clip_vision" / VERSION
    settings = BuildSettings()
    (version_dir / ENGINE_FILE).write_bytes(b"an engine built earlier")
    plan_engine("clip_vision", repository, settings, HOST).sidecar.write(version_dir)
    outcome = build_component_engine("clip_vision", repository, settings, HOST)
    assert outcome.report is None and outcome.passed
    assert outcome.summary().startswith("KEPT clip_vision")
    assert (version_dir / ENGINE_FILE).read_bytes() == b"an engine built earlier"


@pytest.mark.skipif(not NO_TENSORRT, reason="checks the refusal on a host without TensorRT")
def test_a_stale_engine_is_rebuilt_which_needs_tensorrt(exported: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(exported / "clip_vision", repository / "clip_vision", symlinks=True)
    version_dir = repository / "clip_vision" / VERSION
    (version_dir / ENGINE_FILE).write_bytes(b"an engine built by an older TensorRT")
    older = dataclasses.replace(HOST, tensorrt_version="10.3.0")
    plan_engine("clip_vision", repository, BuildSettings(), older).sidecar.write(version_dir)
    with pytest.raises(TensorRTUnavailableError, match="TensorRT's Python package is not installed"):
        build_component_engine("clip_vision", repository, BuildSettings(), HOST)


@pytest.mark.skipif(not NO_TENSORRT, reason="checks the refusal on a host without TensorRT")
def test_vlm_export_engine_without_tensorrt_says_where_to_build_and_exits_2(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vlm_export(["engine", "--repository", str(exported)]) == 2
    error = capsys.readouterr().err
    assert "TensorRT's Python package is not installed" in error and "NGC tritonserver image" in error
    assert "Traceback" not in error


def test_vlm_export_engine_names_a_component_that_was_not_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vlm_export(["engine", "--repository", str(tmp_path), "--component", "clip_vision"]) == 2
    assert "not exported to ONNX in this repository: clip_vision" in capsys.readouterr().err


def test_vlm_export_engine_refuses_a_workspace_below_one_mib(capsys: pytest.CaptureFixture[str]) -> None:
    assert vlm_export(["engine", "--workspace-mib", "0"]) == 2
    assert "workspace must be at least 1 MiB" in capsys.readouterr().err
