"""Which execution providers a python step's ONNX Runtime session gets (serving/patch_providers.py): the default,
as before, unless its config selects TensorRT; then TensorRT with the config's options and the export's profile, CUDA
and the CPU, those the onnxruntime build has. The sessions here are real, on this CPU-only build."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from serving.onnx_runner import OnnxRunner, default_providers
from serving.patch_profile import PatchProfile
from serving.patch_providers import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    EXECUTION_PROVIDER,
    TENSORRT_PROVIDER,
    session_providers,
)

pytestmark = pytest.mark.timeout(60)

PROFILE = PatchProfile(1176, 4, 240, 7232)
GPU_BUILD = (TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER)
GPU_PARAMETERS = {
    "merge_size": "2",
    EXECUTION_PROVIDER: "tensorrt",
    "trt_fp16_enable": "1",
    "trt_engine_cache_enable": "1",
}


def test_without_an_execution_provider_the_session_keeps_the_runners_default() -> None:
    assert session_providers({"merge_size": "2"}, None, GPU_BUILD) is None
    assert default_providers() == [CPU_PROVIDER]  # this build: the embedded and cpu targets run as before


def test_tensorrt_gets_the_configs_options_the_device_and_the_exports_profile_then_cuda_then_cpu() -> None:
    providers = session_providers(GPU_PARAMETERS, PROFILE, GPU_BUILD, device_id=1)
    assert providers == [
        (
            TENSORRT_PROVIDER,
            {
                "trt_fp16_enable": "1",
                "trt_engine_cache_enable": "1",
                "trt_profile_min_shapes": "pixel_values:4x1176,image_grid_thw:1x3",
                "trt_profile_opt_shapes": "pixel_values:240x1176,image_grid_thw:1x3",
                "trt_profile_max_shapes": "pixel_values:7232x1176,image_grid_thw:1x3",
                "device_id": "1",
            },
        ),
        (CUDA_PROVIDER, {"device_id": "1"}),
        CPU_PROVIDER,
    ]


def test_a_build_without_tensorrt_falls_back_to_cuda_and_one_without_a_gpu_to_the_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert session_providers(GPU_PARAMETERS, PROFILE, (CUDA_PROVIDER, CPU_PROVIDER)) == [
        (CUDA_PROVIDER, {"device_id": "0"}),
        CPU_PROVIDER,
    ]
    with caplog.at_level(logging.WARNING):
        assert session_providers(GPU_PARAMETERS, PROFILE, ort.get_available_providers()) == [CPU_PROVIDER]
    assert (
        "lacks TensorrtExecutionProvider, CUDAExecutionProvider: the graph runs on CPUExecutionProvider" in caplog.text
    )


def test_a_session_opens_with_what_is_chosen_on_this_build(tmp_path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    providers = session_providers(GPU_PARAMETERS, PROFILE, ort.get_available_providers())
    with OnnxRunner(tmp_path / "relu.onnx", providers=providers) as runner:
        assert runner.run({"x": np.array([-1.0, 2.0], np.float32)})["y"].tolist() == [0.0, 2.0]


def test_an_unknown_provider_a_missing_profile_and_a_profile_in_the_config_are_refused() -> None:
    with pytest.raises(ValueError, match="execution_provider must be 'tensorrt' or left out, got 'cuda'"):
        session_providers({EXECUTION_PROVIDER: "cuda"}, PROFILE, GPU_BUILD)
    with pytest.raises(ValueError, match="the export's patch profile is needed"):
        session_providers(GPU_PARAMETERS, None, GPU_BUILD)
    with pytest.raises(ValueError, match="trt_profile_max_shapes: the profile comes from the export's patch_profile"):
        session_providers({**GPU_PARAMETERS, "trt_profile_max_shapes": "pixel_values:9x9"}, PROFILE, GPU_BUILD)
