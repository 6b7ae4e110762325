"""Generated configs: valid ModelConfig protobufs, one per target, and the checked-in repository is in sync."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export.cli import main as vlm_export
from export.families.clip.spec import CLIP_MODELS, CLIP_PREPROCESS, CLIP_RANK, CLIP_SIMILARITY, CLIP_TEXT, CLIP_VISION
from export.families.limits import VISION_CPU_BATCH
from export.families.llava.spec import LLAVA_VISION, LLAVA_VISION_FUSED
from export.families.siglip.spec import SIGLIP
from export.repository import ALL_MODELS, generated_files, stale_files, write_repository
from export.specs import EnsembleSpec, OnnxComponentSpec
from export.triton_config import (
    TARGETS,
    ensemble_config,
    onnx_component_config,
    parse_pbtxt,
    python_model_config,
    to_pbtxt,
)

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


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_embedded_text_encoder_takes_ragged_batches(target: str) -> None:
    """The python-backend encoder pads requests of different lengths itself; the native backends would get a
    ragged input flattened to one dimension, so there the batcher merges equal lengths only."""
    config = onnx_component_config(CLIP_TEXT, target)
    assert [entry.allow_ragged_batch for entry in config.input] == [target == "embedded"] * 2
    assert list(config.input[0].dims) == [-1]
    assert not any(entry.allow_ragged_batch for entry in onnx_component_config(CLIP_VISION, target).input)


def test_every_model_has_a_config_and_leaves_have_one_per_target() -> None:
    files = generated_files()
    for spec in CLIP_MODELS:
        assert f"{spec.name}/config.pbtxt" in files
    for target in TARGETS[1:]:
        assert f"clip_vision/configs/{target}.pbtxt" in files
    assert "clip_similarity/configs/cpu.pbtxt" not in files  # python models are the same on every target
    assert files[f"{CLIP_SIMILARITY.name}/1/model.py"].count("import Similarity as TritonPythonModel") == 1


def test_vlm_export_repository_check_fails_on_a_hand_edited_config(tmp_path: Path) -> None:
    write_repository(tmp_path)
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 0
    config = tmp_path / "clip_vision" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 32", "max_batch_size: 8"))
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 1
    assert vlm_export(["repository", "--repository", str(tmp_path)]) == 0
    assert vlm_export(["repository", "--repository", str(tmp_path), "--check"]) == 0


def test_every_queue_policy_of_a_spec_reaches_its_config_on_every_target() -> None:
    for spec in ALL_MODELS:
        if spec.queue is None:
            continue
        configs = (
            [onnx_component_config(spec, target) for target in TARGETS]
            if isinstance(spec, OnnxComponentSpec)
            else [python_model_config(spec)]
        )
        for config in configs:
            policy = config.dynamic_batching.default_queue_policy
            assert policy.max_queue_size == spec.queue.max_queue_size
            assert policy.default_timeout_microseconds == spec.queue.timeout_us
            assert policy.timeout_action == mc.ModelQueuePolicy.REJECT


def test_every_entry_step_and_encoder_is_bounded_and_the_decoder_bounds_its_waiting_list() -> None:
    entry_steps = {step.model for spec in ALL_MODELS if isinstance(spec, EnsembleSpec) for step in spec.steps}
    for spec in ALL_MODELS:
        if spec.name == "llava_decoder":
            assert int(spec.parameters["max_waiting_requests"]) >= 1
        elif spec.name in entry_steps:
            assert spec.queue is not None, f"{spec.name} has an unbounded queue"


def test_a_python_step_without_batching_gets_a_queue_policy_but_no_batching_delay() -> None:
    config = python_model_config(CLIP_PREPROCESS)
    assert config.max_batch_size == 0
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert config.dynamic_batching.default_queue_policy.max_queue_size == CLIP_PREPROCESS.queue.max_queue_size


@pytest.mark.parametrize("target", TARGETS)
def test_the_text_encoder_launches_batches_of_its_preferred_sizes_at_once(target: str) -> None:
    batching = onnx_component_config(CLIP_TEXT, target).dynamic_batching
    assert list(batching.preferred_batch_size) == list(CLIP_TEXT.preferred_batch_sizes) == [8, 16, 32]
    assert batching.max_queue_delay_microseconds == CLIP_TEXT.max_queue_delay_us


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("vision", [CLIP_VISION, LLAVA_VISION, LLAVA_VISION_FUSED, SIGLIP.vision])
def test_vision_towers_take_one_image_at_a_time_on_the_cpu_targets_and_batch_on_the_gpu(
    target: str, vision: OnnxComponentSpec
) -> None:
    preferred = list(onnx_component_config(vision, target).dynamic_batching.preferred_batch_size)
    assert preferred == ([VISION_CPU_BATCH] if target in ("embedded", "cpu") else [])
    assert onnx_component_config(vision, target).max_batch_size == vision.max_batch_size  # clients may still batch


def test_cpu_batch_replaces_the_specs_preferred_sizes_on_the_cpu_targets_only() -> None:
    text = dataclasses.replace(CLIP_TEXT, resources=dataclasses.replace(CLIP_TEXT.resources, cpu_batch=4))
    for target in TARGETS:
        preferred = list(onnx_component_config(text, target).dynamic_batching.preferred_batch_size)
        assert preferred == ([4] if target in ("embedded", "cpu") else [8, 16, 32]), target


@pytest.mark.parametrize("sizes", [(0,), (8, CLIP_TEXT.max_batch_size + 1)])
def test_a_preferred_batch_size_outside_one_to_the_max_batch_is_rejected(sizes: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=f"preferred batch sizes must lie in 1..{CLIP_TEXT.max_batch_size}"):
        dataclasses.replace(CLIP_TEXT, preferred_batch_sizes=sizes)
