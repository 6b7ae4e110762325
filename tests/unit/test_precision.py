"""export.precision: int8 exports on ONNX Runtime within their budget, recorded where the server reads them, and
the refusals (a budget missed; a precision that does not help on CPU)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from export import families
from export.cli import main as vlm_export
from export.families.base import ExportOptions
from export.families.clip.family import CLIP_FAMILY
from export.specs import Tolerance
from serving.manifest import ComponentManifest
from serving.served import served_precisions
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(300)
FLOAT32_RECORD = 'key: "vlm_precision"\n  value {\n    string_value: "fp32"'  # as text_format writes the parameter


def _repository(tmp_path: Path) -> Path:
    repository = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repository", repository, ignore=shutil.ignore_patterns("*.onnx*", "*.json"))
    return repository


def _config(repository: Path, model: str) -> str:
    return (repository / model / "config.pbtxt").read_text()


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def int8_clip(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = _repository(tmp_path_factory.mktemp("int8"))
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(repository), "--precision", "int8"]
    assert vlm_export(argv) == 0
    return repository


def test_an_int8_export_quantizes_the_weight_matmuls_and_keeps_the_float_conv(int8_clip: Path) -> None:
    for model in ("clip_vision", "clip_text"):
        folder = int8_clip / model / "1"
        ops = _op_types(folder / "model.onnx")
        assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
        assert "ConvInteger" not in ops
        assert not (folder / "model.onnx.data").exists()  # one file: the int8 weights are small
    assert "Conv" in _op_types(int8_clip / "clip_vision" / "1" / "model.onnx")


def test_an_int8_export_meets_its_budget_against_pytorch_and_records_its_precision(int8_clip: Path) -> None:
    for model in ("clip_vision", "clip_text"):
        manifest = ComponentManifest.read(int8_clip / model / "1")
        assert manifest.precision == "int8"
        assert manifest.parity["passed"] and manifest.parity["candidate"] == "onnxruntime int8"
        assert 0.99 <= manifest.parity["min_cosine"] < 1.0
        assert manifest.parity["tolerance"]["min_cosine"] == 0.99
    for target in ("embedded", "cpu"):
        precisions = served_precisions(int8_clip, target)
        assert precisions == {"clip_text": "int8", "clip_vision": "int8"}  # LLaVA's configs, not exported: left out
    assert served_precisions(int8_clip, "gpu") == {}  # an engine's precision is in its engine.json


def test_regenerating_the_configs_keeps_the_precision_each_export_recorded(
    int8_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vlm_export(["repository", "--repository", str(int8_clip), "--check"]) == 0
    assert vlm_export(["repository", "--repository", str(int8_clip)]) == 0
    assert served_precisions(int8_clip, "cpu")["clip_text"] == "int8"
    assert FLOAT32_RECORD in _config(int8_clip, "llava_vision")  # not exported: the default


def test_a_vlm_vision_tower_and_projector_export_at_int8_within_their_budget(tiny_llava: Path, tmp_path: Path) -> None:
    repository = _repository(tmp_path)
    argv = ["llava", "--checkpoint", str(tiny_llava), "--repository", str(repository), "--precision", "int8"]
    assert vlm_export(argv) == 0
    for model in ("llava_vision", "llava_projector"):
        manifest = ComponentManifest.read(repository / model / "1")
        assert manifest.precision == "int8" and manifest.parity["passed"] and manifest.parity["min_cosine"] >= 0.99
        assert "MatMulInteger" in _op_types(repository / model / "1" / "model.onnx")
    assert served_precisions(repository, "embedded")["llava_projector"] == "int8"


def test_the_checked_in_repository_records_float32_encoders() -> None:
    for model in ("clip_vision", "clip_text", "llava_vision", "llava_projector"):
        assert FLOAT32_RECORD in _config(REPO_ROOT / "model_repository", model)


def test_an_int8_export_past_its_budget_exits_1_naming_the_component_and_the_figure(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    impossible = Tolerance(max_abs_diff=1e-30, min_cosine=1.0)
    failing = replace(CLIP_FAMILY.specs, vision=replace(CLIP_FAMILY.specs.vision, int8_tolerance=impossible))
    strict = replace(CLIP_FAMILY, named_specs=lambda name: failing)
    monkeypatch.setattr(families, "FAMILIES", tuple(strict if f is CLIP_FAMILY else f for f in families.FAMILIES))
    repository = _repository(tmp_path)
    before = {p.relative_to(repository): p.read_bytes() for p in repository.rglob("*") if p.is_file()}
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(repository), "--precision", "int8"]
    assert vlm_export(argv) == 1
    output = capsys.readouterr()
    assert "FAIL clip_vision: onnxruntime int8 vs pytorch" in output.out and "min cosine 0.9" in output.out
    assert "PASS clip_text" in output.out and "left unchanged" in output.err
    assert {p.relative_to(repository): p.read_bytes() for p in repository.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("precision", "reason"),
    [("bf16", "no bfloat16 MatMul"), ("fp16", "TensorRT precision"), ("fp8", "TensorRT precision on Ada and Hopper")],
)
def test_a_precision_that_does_not_help_on_cpu_is_refused_with_its_reason(
    precision: str, reason: str, tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(tmp_path / "repo"), "--precision", precision]
    assert vlm_export(argv) == 2
    assert reason in capsys.readouterr().err and not (tmp_path / "repo").exists()
    with pytest.raises(ValueError, match=f"--precision {precision}"):
        ExportOptions(precision=precision)
