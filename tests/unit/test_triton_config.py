"""Generated configs: valid ModelConfig protobufs, one per target, and the checked-in repository is in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export.cli import main as vlm_export
from export.clip_spec import CLIP_MODELS, CLIP_RANK, CLIP_SIMILARITY, CLIP_VISION
from export.repository import generated_files, stale_files, write_repository
from export.triton_config import TARGETS, ensemble_config, onnx_component_config, parse_pbtxt, to_pbtxt

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_repository_equals_a_fresh_generation() -> None:
    stale = stale_files(REPO_ROOT / "model_repository")
    assert not stale, f"run `vlm-export repository`; out of date: {stale}"


def test_every_generated_config_parses_back_to_the_same_protobuf() -> None:
    for relative, content in generated_files().items():
        if relative.endswith(".pbtxt"):
            config = parse_pbtxt(content)
            assert config.name == relative.split("/")[0]
            assert parse_pbtxt(to_pbtxt(config)) == config


def test_max_batch_size_zero_is_written_explicitly() -> None:
    text = to_pbtxt(ensemble_config(CLIP_RANK))
    assert "max_batch_size: 0\n" in text
    assert text.count("max_batch_size") == 1


@pytest.mark.parametrize(
    ("target", "backend", "kind"),
    [
        ("embedded", "python", mc.ModelInstanceGroup.KIND_CPU),
        ("cpu", "onnxruntime", mc.ModelInstanceGroup.KIND_CPU),
        ("gpu-onnxruntime", "onnxruntime", mc.ModelInstanceGroup.KIND_GPU),
    ],
)
def test_targets_differ_only_in_the_leaf_backend(target: str, backend: str, kind: int) -> None:
    config = onnx_component_config(CLIP_VISION, target)
    assert config.backend == backend
    assert [group.kind for group in config.instance_group] == [kind]
    assert config.max_batch_size == CLIP_VISION.max_batch_size
    assert config.dynamic_batching.max_queue_delay_microseconds == CLIP_VISION.max_queue_delay_us
    assert config.parameters["intra_op_thread_count"].string_value == str(CLIP_VISION.resources.intra_op_threads)
    reference = onnx_component_config(CLIP_VISION, "embedded")
    assert list(config.input) == list(reference.input) and list(config.output) == list(reference.output)


def test_checkpoint_dependent_dims_are_variable_in_the_config() -> None:
    config = onnx_component_config(CLIP_VISION, "cpu")
    assert list(config.input[0].dims) == [3, -1, -1]
    assert list(config.output[0].dims) == [-1]


def test_every_model_has_a_config_and_leaves_have_one_per_target() -> None:
    files = generated_files()
    for spec in CLIP_MODELS:
        assert f"{spec.name}/config.pbtxt" in files
    for target in TARGETS[1:]:
        assert f"clip_vision/configs/{target}.pbtxt" in files
    assert "clip_similarity/configs/cpu.pbtxt" not in files  # python models are the same on every target
    assert files[f"{CLIP_SIMILARITY.name}/1/model.py"].count("import ClipSimilarity as TritonPythonModel") == 1


def test_vlm_export_repository_check_fails_on_a_hand_edited_config(tmp_path: Path) -> None:
    write_repository(tmp_path)
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 0
    config = tmp_path / "clip_vision" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 32", "max_batch_size: 8"))
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 1
    assert vlm_export(["repository", "--repository", str(tmp_path)]) == 0
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 0
