"""The GPU targets' configs: ``gpu`` serves TensorRT engines on GPU instances, ``gpu-onnxruntime`` the ONNX
files through the onnxruntime backend's TensorRT accelerator; both are generated, checked in, in sync and
valid ``model_config_pb2`` protobufs, and the python models and ensembles are the same for every target."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export.families.llava.spec import LLAVA_DECODER
from export.repository import ALL_MODELS, generated_files
from export.specs import OnnxComponentSpec
from export.tensorrt_sidecar import DEFAULT_WORKSPACE_BYTES, ENGINE_FILE
from export.triton_config import ORT_TENSORRT_CACHE, onnx_component_config, parse_pbtxt, python_model_config
from serving.manifest import ONNX_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]
LEAVES = [spec for spec in ALL_MODELS if isinstance(spec, OnnxComponentSpec)]
GPU_TARGETS = ("gpu", "gpu-onnxruntime")


def checked_in(spec_name: str, target: str) -> mc.ModelConfig:
    return parse_pbtxt((REPO_ROOT / "model_repository" / spec_name / "configs" / f"{target}.pbtxt").read_text())


@pytest.mark.parametrize("target", GPU_TARGETS)
@pytest.mark.parametrize("spec", LEAVES, ids=lambda spec: spec.name)
def test_checked_in_gpu_configs_parse_to_the_protobuf_the_spec_generates(spec: OnnxComponentSpec, target: str) -> None:
    assert checked_in(spec.name, target) == onnx_component_config(spec, target)


@pytest.mark.parametrize("spec", LEAVES, ids=lambda spec: spec.name)
def test_the_gpu_target_serves_tensorrt_plans_on_gpu_instances(spec: OnnxComponentSpec) -> None:
    config = onnx_component_config(spec, "gpu")
    assert config.platform == "tensorrt_plan" and not config.backend
    assert config.default_model_filename == ENGINE_FILE
    assert [(group.kind, group.count) for group in config.instance_group] == [
        (mc.ModelInstanceGroup.KIND_GPU, spec.resources.instance_count)
    ]
    assert config.max_batch_size == spec.max_batch_size
    assert config.dynamic_batching.max_queue_delay_microseconds == spec.max_queue_delay_us
    assert not config.parameters  # ONNX Runtime thread counts mean nothing to TensorRT


@pytest.mark.parametrize("spec", LEAVES, ids=lambda spec: spec.name)
def test_the_gpu_onnxruntime_target_uses_the_tensorrt_accelerator_in_fp16_with_a_cached_engine(
    spec: OnnxComponentSpec,
) -> None:
    config = onnx_component_config(spec, "gpu-onnxruntime")
    assert config.backend == "onnxruntime" and config.default_model_filename == ONNX_FILE
    assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert accelerator.parameters["trt_engine_cache_enable"] == "1"
    assert accelerator.parameters["trt_engine_cache_path"] == ORT_TENSORRT_CACHE
    assert int(accelerator.parameters["max_workspace_size_bytes"]) == DEFAULT_WORKSPACE_BYTES


@pytest.mark.parametrize("target", GPU_TARGETS)
@pytest.mark.parametrize("spec", LEAVES, ids=lambda spec: spec.name)
def test_gpu_targets_keep_the_embedded_interface(spec: OnnxComponentSpec, target: str) -> None:
    config, embedded = onnx_component_config(spec, target), onnx_component_config(spec, "embedded")
    assert [tensor.allow_ragged_batch for tensor in config.input] == [False] * len(config.input)
    for tensor in embedded.input:  # only the python-backend encoder pads ragged batches itself
        tensor.allow_ragged_batch = False
    assert list(config.input) == list(embedded.input) and list(config.output) == list(embedded.output)
    assert config.response_cache == embedded.response_cache


def test_only_exported_leaves_have_per_target_configs() -> None:
    per_target = {path.split("/")[0] for path in generated_files() if "/configs/" in path}
    assert per_target == {spec.name for spec in LEAVES}
    for spec in LEAVES:
        for target in GPU_TARGETS:
            assert f"{spec.name}/configs/{target}.pbtxt" in generated_files()


def test_the_decoder_keeps_gpu_inputs_on_the_gpu_and_picks_its_dtype_by_device() -> None:
    config = python_model_config(LLAVA_DECODER)
    assert config.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no"
    assert config.parameters["dtype"].string_value == "auto"
    assert parse_pbtxt((REPO_ROOT / "model_repository" / "llava_decoder" / "config.pbtxt").read_text()) == config


def test_a_python_step_that_runs_onnx_gets_gpu_instances_and_tensorrt_on_the_gpu_targets_only() -> None:
    from export.families.qwen2_vl.spec import qwen2_vl_models
    from serving.patch_providers import EXECUTION_PROVIDER

    vision = next(spec for spec in qwen2_vl_models() if spec.name == "qwen2_vl_vision")
    files = generated_files(qwen2_vl_models())
    assert {path for path in files if "/configs/" in path} == {
        f"qwen2_vl_vision/configs/{target}.pbtxt" for target in GPU_TARGETS
    }
    cpu = parse_pbtxt(files["qwen2_vl_vision/config.pbtxt"])  # embedded and cpu: ONNX Runtime on the CPU, as before
    assert [group.kind for group in cpu.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert {key: value.string_value for key, value in cpu.parameters.items()} == {"merge_size": "2"}
    for target in GPU_TARGETS:
        config = parse_pbtxt(files[f"qwen2_vl_vision/configs/{target}.pbtxt"])
        assert config == python_model_config(vision, target) and config.backend == "python"
        assert [group.kind for group in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
        parameters = {key: value.string_value for key, value in config.parameters.items()}
        assert parameters == {
            "merge_size": "2",
            EXECUTION_PROVIDER: "tensorrt",
            "trt_fp16_enable": "1",
            "trt_max_workspace_size": str(DEFAULT_WORKSPACE_BYTES),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": ORT_TENSORRT_CACHE,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": ORT_TENSORRT_CACHE,
        }
        assert list(config.input) == list(cpu.input) and list(config.output) == list(cpu.output)
