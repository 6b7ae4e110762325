"""The CLIP export: ONNX files that match PyTorch, their manifests, and the files the server reads."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import families
from export.cli import main as vlm_export
from export.families.clip.family import CLIP_FAMILY
from export.families.clip.spec import CLIP_TEXT, CLIP_VISION
from export.parity import ParityReport
from export.specs import Tolerance
from serving.manifest import MANIFEST_FORMAT, ComponentManifest
from serving.onnx_runner import OnnxRunner
from serving.similarity import read_logit_scale
from tests.conftest import REPO_ROOT


def test_both_encoders_pass_parity_at_every_batch_size_including_the_extremes(
    exported_clip: list[ParityReport],
) -> None:
    reports = exported_clip
    assert [r.component for r in reports] == ["clip_vision", "clip_text"]
    for report, spec in zip(reports, (CLIP_VISION, CLIP_TEXT), strict=True):
        assert report.passed, report.summary()
        assert {case.batch_size for case in report.cases} >= {1, spec.max_batch_size}
        assert report.max_abs_diff < 1e-4 and report.min_cosine > 0.9999


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_onnx_interfaces_have_a_dynamic_batch_and_symbolic_checkpoint_dims(model_repository: Path) -> None:
    model = onnx.load(str(model_repository / "clip_vision" / "1" / "model.onnx"), load_external_data=False)
    (pixels,) = model.graph.input
    assert _dims(pixels) == ["batch", 3, "image_size", "image_size"]
    (embeds,) = model.graph.output
    assert _dims(embeds) == ["batch", "embed_dim"]


def test_the_text_encoder_has_a_dynamic_sequence_axis_and_runs_at_every_length(model_repository: Path) -> None:
    path = model_repository / "clip_text" / "1" / "model.onnx"
    model = onnx.load(str(path), load_external_data=False)
    assert [_dims(value) for value in model.graph.input] == [["batch", "sequence"]] * 2
    with OnnxRunner(path) as runner:
        for length in (1, 2, 40, 77):  # a graph traced at one length would fail at the others
            ids = np.full((2, length), 5, np.int64)
            embeds = runner.run({"input_ids": ids, "attention_mask": np.ones_like(ids)})["text_embeds"]
            assert embeds.shape == (2, 32) and np.isfinite(embeds).all()


def test_manifests_pin_the_checkpoint_shapes_and_keep_the_parity_report(model_repository: Path) -> None:
    vision = ComponentManifest.read(model_repository / "clip_vision" / "1")
    text = ComponentManifest.read(model_repository / "clip_text" / "1")
    assert vision.inputs[0].shape == [3, 64, 64] and vision.outputs[0].shape == [32]
    assert [t.name for t in text.inputs] == ["input_ids", "attention_mask"]
    ids, mask = text.inputs
    assert ids.shape == mask.shape == [-1] and ids.max_shape == mask.max_shape == [77]
    assert ids.dynamic_axes == mask.dynamic_axes == {"sequence": 0}
    assert (ids.pad_value, mask.pad_value) == (1, 0)  # tiny-clip's pad token is its end-of-text token, id 1
    assert vision.parity["passed"] and text.parity["passed"]


def test_the_server_side_files_are_written(model_repository: Path, tiny_clip: Path) -> None:
    assert (model_repository / "clip_tokenize" / "1" / "tokenizer" / "tokenizer.json").is_file()
    assert (model_repository / "clip_preprocess" / "1" / "image_processor" / "preprocessor_config.json").is_file()
    assert read_logit_scale(model_repository / "clip_similarity" / "1") == pytest.approx(1 / 0.07, rel=1e-4)


def test_vlm_export_exits_non_zero_when_parity_is_past_the_tolerance(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    impossible = Tolerance(max_abs_diff=1e-30, min_cosine=1.0)
    failing = replace(CLIP_FAMILY.specs, text=replace(CLIP_TEXT, tolerance=impossible))
    strict = replace(CLIP_FAMILY, named_specs=lambda name: failing)
    monkeypatch.setattr(families, "FAMILIES", tuple(strict if f is CLIP_FAMILY else f for f in families.FAMILIES))
    repository = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repository", repository, ignore=shutil.ignore_patterns("*.onnx*", "*.json"))
    before = sorted(p.relative_to(repository) for p in repository.rglob("*"))
    assert vlm_export(["clip", "--checkpoint", str(tiny_clip), "--repository", str(repository)]) == 1
    output = capsys.readouterr()
    assert "FAIL clip_text" in output.out and "PASS clip_vision" in output.out
    assert "parity check failed" in output.err and "left unchanged" in output.err
    assert sorted(p.relative_to(repository) for p in repository.rglob("*")) == before


def test_vlm_export_refuses_a_folder_that_is_not_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vlm_export(["clip", "--checkpoint", str(tmp_path), "--repository", str(tmp_path / "repo")]) == 2
    assert "not a Hugging Face checkpoint" in capsys.readouterr().err


def test_a_manifest_from_another_format_refuses_to_load_and_says_to_re_export(
    model_repository: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "stale"
    folder.mkdir()
    text = (model_repository / "clip_text" / "1" / "component.json").read_text()
    (folder / "component.json").write_text(text.replace(f'"format": {MANIFEST_FORMAT}', '"format": 1'))
    with pytest.raises(ValueError, match="export the checkpoint again"):
        ComponentManifest.read(folder)
