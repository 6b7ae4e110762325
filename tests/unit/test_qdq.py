"""export.qdq: the QDQ models TensorRT int8 and fp8 engines are built from, made by real exports of the tiny
checkpoints with ONNX Runtime's static quantization, run fake-quantized on ONNX Runtime's CPU provider against PyTorch
within each precision's budget; the engine plan that builds from them, the builder flags it sets, and the refusals
(a budget missed, no QDQ model of the precision, no fp8 tensor cores). No TensorRT runs here: tests/gpu builds them."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export import families
from export.cli import main as vlm_export
from export.families.base import ExportOptions
from export.families.clip.family import CLIP_FAMILY
from export.families.llava.exporter import export_llava
from export.parity import ParityReport
from export.precision import budget
from export.qdq import QDQ_PRECISIONS, qdq_file, weight_gemms
from export.specs import Tolerance
from export.tensorrt_engine import BUILDER_FLAGS, BuildSettings, set_precision
from export.tensorrt_export import build_component_engine, plan_engine
from export.tensorrt_sidecar import ENGINE_FILE, PRECISIONS, EngineHost, EngineMismatchError, onnx_sha256
from serving.manifest import ONNX_FILE, ComponentManifest
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(300)
HOPPER = EngineHost("10.5.0", "NVIDIA H100 80GB HBM3", "9.0")
AMPERE = EngineHost("10.5.0", "NVIDIA A100-SXM4-80GB", "8.0")
NO_TENSORRT = importlib.util.find_spec("tensorrt") is None
QUANTIZED_TYPE = {"int8": onnx.TensorProto.INT8, "fp8": onnx.TensorProto.FLOAT8E4M3FN}


def _repository(tmp_path: Path) -> Path:
    repository = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repository", repository, ignore=shutil.ignore_patterns("*.onnx*", "*.json"))
    return repository


def _files(repository: Path) -> dict[Path, bytes]:
    return {p.relative_to(repository): p.read_bytes() for p in repository.rglob("*") if p.is_file()}


@pytest.fixture(scope="module", params=QDQ_PRECISIONS)
def clip_export(
    request: pytest.FixtureRequest, tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, list[ParityReport]]:
    precision: str = request.param
    repository = _repository(tmp_path_factory.mktemp(precision))
    return precision, repository, CLIP_FAMILY.export(tiny_clip, repository, ExportOptions(qdq=precision))


def test_a_qdq_export_keeps_the_float32_model_and_adds_a_qdq_model_within_its_budget(
    clip_export: tuple[str, Path, list[ParityReport]],
) -> None:
    precision, repository, reports = clip_export
    assert [(r.component, r.candidate) for r in reports] == [
        ("clip_vision", "onnxruntime fp32"),
        ("clip_vision", f"onnxruntime {precision} qdq"),
        ("clip_text", "onnxruntime fp32"),
        ("clip_text", f"onnxruntime {precision} qdq"),
    ]
    assert all(report.passed for report in reports), [report.summary() for report in reports]
    for report in reports[1::2]:
        assert report.reference == "pytorch" and 0.98 <= report.min_cosine < 1.0  # quantized: close, not equal
    for model in ("clip_vision", "clip_text"):
        folder = repository / model / "1"
        manifest = ComponentManifest.read(folder)
        assert manifest.precision == "fp32" and list(manifest.qdq) == [precision]
        made = manifest.qdq[precision]
        assert made["file"] == qdq_file(precision) and (folder / made["file"]).is_file()
        spec = CLIP_FAMILY.encoder_variants()[0 if model == "clip_vision" else 1]
        assert made["parity"]["passed"] and made["parity"]["tolerance"] == dataclasses.asdict(budget(spec, precision))
        ops = {node.op_type for node in onnx.load(str(folder / ONNX_FILE), load_external_data=False).graph.node}
        assert "QuantizeLinear" not in ops  # what ONNX Runtime targets serve stays float32


def test_the_qdq_model_quantizes_the_weight_gemms_symmetrically_in_tensorrts_scheme(
    clip_export: tuple[str, Path, list[ParityReport]],
) -> None:
    precision, repository, _ = clip_export
    for model in ("clip_vision", "clip_text"):
        folder = repository / model / "1"
        float_model = onnx.load(str(folder / ONNX_FILE), load_external_data=False)
        qdq = onnx.load(str(folder / qdq_file(precision)))
        constants = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
        producers = {output: node for node in qdq.graph.node for output in node.output}
        zero_points = [
            next(i for i in qdq.graph.initializer if i.name == node.input[2])
            for node in qdq.graph.node
            if node.op_type in ("QuantizeLinear", "DequantizeLinear")
        ]
        assert zero_points and {z.data_type for z in zero_points} == {QUANTIZED_TYPE[precision]}
        assert all(not np.any(constants[z.name].astype(np.float32)) for z in zero_points)  # symmetric
        gemms = [node for node in qdq.graph.node if node.op_type in ("MatMul", "Gemm")]
        quantized = [g for g in gemms if all(producers.get(i, g).op_type == "DequantizeLinear" for i in g.input[:2])]
        assert len(quantized) == len(weight_gemms(float_model, ("MatMul", "Gemm"))) > 0
        assert len(quantized) < len(gemms)  # the attention's activation products stay float
        for gemm in quantized:
            weight = producers[gemm.input[1]]
            assert weight.input[0] in constants  # stored quantized, dequantized in the graph
            scale = constants[weight.input[1]]
            if precision == "int8":  # one scale per output channel
                assert scale.shape == (constants[weight.input[0]].shape[1 if gemm.op_type == "MatMul" else 0],)
            else:
                assert scale.size == 1


def test_an_int8_or_fp8_engine_is_planned_from_the_exports_qdq_model(
    clip_export: tuple[str, Path, list[ParityReport]], tmp_path: Path
) -> None:
    precision, repository, _ = clip_export
    settings = BuildSettings(precision)
    plan = plan_engine("clip_vision", repository, settings, HOPPER)
    qdq_path = repository / "clip_vision" / "1" / qdq_file(precision)
    assert plan.source == qdq_path and plan.sidecar.precision == precision
    assert plan.sidecar.source_onnx_sha256 == onnx_sha256(qdq_path)
    copy = tmp_path / "repository"
    shutil.copytree(repository / "clip_vision", copy / "clip_vision")
    version_dir = copy / "clip_vision" / "1"
    (version_dir / ENGINE_FILE).write_bytes(b"an engine built earlier")
    plan_engine("clip_vision", copy, settings, HOPPER).sidecar.write(version_dir)
    assert build_component_engine("clip_vision", copy, settings, HOPPER).summary().startswith("KEPT clip_vision")


def test_an_engine_of_a_precision_the_export_made_no_qdq_model_for_is_refused_naming_the_export_to_run(
    clip_export: tuple[str, Path, list[ParityReport]],
) -> None:
    precision, repository, _ = clip_export
    other = next(p for p in QDQ_PRECISIONS if p != precision)
    with pytest.raises(ValueError, match=f"no {other} QDQ model.*--runtime tensorrt --precision {other}"):
        plan_engine("clip_text", repository, BuildSettings(other), HOPPER)


def test_an_fp8_engine_is_refused_on_a_gpu_without_fp8_tensor_cores(
    clip_export: tuple[str, Path, list[ParityReport]],
) -> None:
    _, repository, _ = clip_export
    with pytest.raises(EngineMismatchError, match=r"fp8 engines need compute capability 8\.9.*A100.* is 8\.0"):
        plan_engine("clip_vision", repository, BuildSettings("fp8"), AMPERE)


@pytest.mark.parametrize("precision", QDQ_PRECISIONS)
def test_a_vlm_vision_tower_and_projector_get_qdq_models_within_their_budget(
    precision: str, tiny_llava: Path, tmp_path: Path
) -> None:
    reports = export_llava(tiny_llava, _repository(tmp_path), qdq=precision)
    quantized = [report for report in reports if report.candidate == f"onnxruntime {precision} qdq"]
    assert [report.component for report in quantized] == ["llava_vision", "llava_projector"]
    assert all(report.passed for report in reports), [report.summary() for report in reports]


class _Config:
    """Records what the builder-config calls set, as TensorRT's IBuilderConfig takes them."""

    def __init__(self) -> None:
        self.set: list[str] = []
        self.cleared: list[str] = []

    def set_flag(self, flag: str) -> None:
        self.set.append(flag)

    def clear_flag(self, flag: str) -> None:
        self.cleared.append(flag)


@pytest.mark.parametrize(
    ("precision", "set_flags", "cleared"),
    [("int8", ["INT8", "FP16"], []), ("fp8", ["FP8", "FP16"], []), ("fp16", ["FP16"], []), ("fp32", [], ["TF32"])],
)
def test_quantized_engines_set_their_precisions_flag_and_fp16_for_the_layers_left_float(
    precision: str, set_flags: list[str], cleared: list[str]
) -> None:
    flags = SimpleNamespace(**{name: name for name in ("FP16", "BF16", "INT8", "FP8", "TF32")})
    config = _Config()
    set_precision(SimpleNamespace(BuilderFlag=flags), config, precision)  # type: ignore[arg-type]
    assert (config.set, config.cleared) == (set_flags, cleared)
    assert set(BUILDER_FLAGS) == set(PRECISIONS)  # every engine precision has its flags


@pytest.mark.skipif(not NO_TENSORRT, reason="checks the exit on a host without TensorRT")
def test_vlm_export_with_tensorrt_int8_makes_and_checks_the_qdq_models_then_says_where_to_build(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = _repository(tmp_path)
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(repository)]
    assert vlm_export([*argv, "--runtime", "tensorrt", "--precision", "int8"]) == 2
    output = capsys.readouterr()
    assert "PASS clip_vision: onnxruntime int8 qdq vs pytorch" in output.out
    assert "PASS clip_text: onnxruntime int8 qdq vs pytorch" in output.out
    assert "TensorRT's Python package is not installed" in output.err
    assert list(ComponentManifest.read(repository / "clip_text" / "1").qdq) == ["int8"]


def test_a_qdq_model_past_its_budget_exits_1_naming_the_component_and_the_figure(
    tiny_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    impossible = Tolerance(max_abs_diff=1e-30, min_cosine=1.0)
    failing = dataclasses.replace(
        CLIP_FAMILY.specs, vision=dataclasses.replace(CLIP_FAMILY.specs.vision, fp8_tolerance=impossible)
    )
    strict = dataclasses.replace(CLIP_FAMILY, named_specs=lambda name: failing)
    monkeypatch.setattr(families, "FAMILIES", tuple(strict if f is CLIP_FAMILY else f for f in families.FAMILIES))
    repository = _repository(tmp_path)
    before = _files(repository)
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(repository)]
    assert vlm_export([*argv, "--runtime", "tensorrt", "--precision", "fp8"]) == 1
    output = capsys.readouterr()
    assert "PASS clip_vision: onnxruntime fp32 vs pytorch" in output.out
    assert "FAIL clip_vision: onnxruntime fp8 qdq vs pytorch" in output.out and "min cosine 0.9" in output.out
    assert "left unchanged" in output.err and _files(repository) == before


def test_a_qdq_model_is_made_from_the_float32_export_only() -> None:
    with pytest.raises(ValueError, match="made from the fp32 export, not from int8"):
        ExportOptions(precision="int8", qdq="int8")
    with pytest.raises(ValueError, match="must be one of int8, fp8, got 'fp16'"):
        ExportOptions(qdq="fp16")
