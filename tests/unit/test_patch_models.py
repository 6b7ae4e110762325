"""The Qwen2-VL family's python-backend steps (``patch_preprocess``, ``patch_encoder``) on tiny-qwen2-vl's export:
each runs its setup and requests in a fresh interpreter without torch or transformers (as in the stub), answers with
the shapes the decoder needs, and refuses inconsistent inputs by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.families.base import ExportOptions
from export.families.qwen2_vl.family import Qwen2VLFamily
from export.triton_config import parse_pbtxt
from tests.unit.test_stub_imports import CHILD, HEAVY

pytestmark = pytest.mark.timeout(180)

CASES = {
    # 96 x 80 -> 84 x 84: 6 x 6 patches; 150 x 40 -> 28 x 140: 2 x 10 patches (1176 values each: 3 x 2 x 14 x 14)
    "qwen2_vl_preprocess": (
        "serving.triton_models.patch_preprocess:PatchPreprocess",
        "out = model.handle({'image': np.array([jpeg(96, 80), jpeg(150, 40)], dtype=object)})\n"
        "assert out['pixel_values'].shape == (36 + 20, 1176), out['pixel_values'].shape\n"
        "assert out['image_grid_thw'].tolist() == [[1, 6, 6], [1, 2, 10]]",
    ),
    "qwen2_vl_vision": (
        "serving.triton_models.patch_encoder:PatchEncoder",
        "grids = np.array([[1, 6, 6], [1, 2, 10]])\n"
        "out = model.handle({'pixel_values': np.zeros((56, 1176), np.float32), 'image_grid_thw': grids})\n"
        "assert out['image_embeds'].shape == (9 + 5, 64), out['image_embeds'].shape\n"
        "from serving.errors import InvalidInputError\n"
        "for pixels, grid, field in ((np.zeros((55, 1176), np.float32), grids, 'pixel_values'),\n"
        "                            (np.zeros((15, 1176), np.float32), np.array([[1, 3, 5]]), 'image_grid_thw')):\n"
        "    try:\n"
        "        model.handle({'pixel_values': pixels, 'image_grid_thw': grid})\n"
        "        raise AssertionError('accepted')\n"
        "    except InvalidInputError as error:\n"
        "        assert str(error.field) == field, error.field",
    ),
}


@pytest.fixture(scope="module")
def repository(tiny_qwen2_vl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qwen2_vl-steps") / "model_repository"
    reports = Qwen2VLFamily().export(tiny_qwen2_vl, root, ExportOptions())
    assert all(report.passed for report in reports)
    return root


@pytest.mark.parametrize("model", sorted(CASES))
def test_the_step_answers_without_torch_or_transformers(repository: Path, model: str) -> None:
    entry_point, request = CASES[model]
    config = parse_pbtxt((repository / model / "config.pbtxt").read_text())
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    child = [sys.executable, "-c", CHILD.format(heavy=set(HEAVY))]
    result = subprocess.run(
        [*child, entry_point, str(repository / model / "1"), json.dumps(parameters), request],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_export_records_the_towers_patch_range_from_the_checkpoints_processors(
    repository: Path, tiny_qwen2_vl: Path
) -> None:
    from serving.patch_profile import PatchProfile, patch_profile
    from serving.smart_resize import PatchSettings
    from serving.video_patches import read_video_settings

    profile = PatchProfile.read(repository / "qwen2_vl_vision" / "1")
    settings = PatchSettings.read(tiny_qwen2_vl)
    assert profile == patch_profile(settings, read_video_settings(tiny_qwen2_vl))
    assert (profile.min_patches, profile.patch_values, profile.max_grids) == (4, 1176, 1)
    assert profile.min_patches <= 36 <= profile.max_patches  # the 96 x 80 image above: 6 x 6 patches


def test_the_gpu_config_serves_on_an_onnxruntime_without_tensorrt_or_cuda(repository: Path) -> None:
    """The configs/gpu.pbtxt parameters with the export's profile: this build has neither provider, so the step
    warns and answers on the CPU, and refuses by name a call past the profile's patches."""
    entry_point, request = CASES["qwen2_vl_vision"]
    config = parse_pbtxt((repository / "qwen2_vl_vision" / "configs" / "gpu.pbtxt").read_text())
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert parameters["execution_provider"] == "tensorrt"
    too_large = (  # past the profile's 452 patches (tiny-qwen2-vl's largest image or video frame group)
        "try:\n"
        "    model.handle({'pixel_values': np.zeros((484, 1176), np.float32),\n"
        "                  'image_grid_thw': np.array([[1, 22, 22]])})\n"
        "    raise AssertionError('accepted')\n"
        "except InvalidInputError as error:\n"
        "    assert str(error.field) == 'image_grid_thw' and 'at most 452 patches' in str(error), error"
    )
    on_cpu = "assert model.runner.providers == ['CPUExecutionProvider'], model.runner.providers"
    check = "\n".join((request, on_cpu, too_large))
    child = [sys.executable, "-c", CHILD.format(heavy=set(HEAVY))]
    result = subprocess.run(
        [*child, entry_point, str(repository / "qwen2_vl_vision" / "1"), json.dumps(parameters), check],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "lacks TensorrtExecutionProvider, CUDAExecutionProvider" in result.stderr
