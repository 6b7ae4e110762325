"""The LLaVA export: vision tower and projector to ONNX (separate or fused) with parity, and the links the
served models need."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, LlavaForConditionalGeneration

from export.cli import main as vlm_export
from export.families.llava.exporter import VisionFeatures, load_projector, load_vision_tower
from export.parity import ParityReport
from export.triton_config import parse_pbtxt
from serving.manifest import ONNX_FILE, ComponentManifest
from serving.onnx_runner import OnnxRunner
from tests.conftest import REPO_ROOT


def test_vision_tower_and_projector_pass_parity_at_every_batch_size(exported_llava: list[ParityReport]) -> None:
    assert [r.component for r in exported_llava] == ["llava_vision", "llava_projector"]
    for report in exported_llava:
        assert report.passed, report.summary()
        assert {case.batch_size for case in report.cases} == {1, 3, 16}


@pytest.mark.parametrize(
    ("checkpoint_fixture", "shape"),
    [("tiny_llava", (2, 16, 64)), ("tiny_llava_full", (2, 17, 128))],  # tiny-llava-full: last layer, CLS kept
)
def test_the_exported_features_are_the_checkpoints_own_image_features(
    request: pytest.FixtureRequest, checkpoint_fixture: str, shape: tuple[int, int, int]
) -> None:
    checkpoint: Path = request.getfixturevalue(checkpoint_fixture)
    config = AutoConfig.from_pretrained(checkpoint)
    projector = load_projector(checkpoint, config)
    assert (projector.linear_1.bias is None) == (not config.multimodal_projector_bias)
    ours = VisionFeatures(
        load_vision_tower(checkpoint, config),
        config.vision_feature_layer,
        config.vision_feature_select_strategy,
        projector,
    )
    model = LlavaForConditionalGeneration.from_pretrained(checkpoint).eval()
    size = config.vision_config.image_size
    pixels = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        expected = torch.stack(list(model.model.get_image_features(pixel_values=pixels).pooler_output))
        assert expected.shape == shape
        assert torch.allclose(ours(pixels), expected, atol=1e-6)


def test_manifests_pin_the_checkpoints_sizes(model_repository: Path) -> None:
    vision = ComponentManifest.read(model_repository / "llava_vision" / "1")
    projector = ComponentManifest.read(model_repository / "llava_projector" / "1")
    assert vision.inputs[0].shape == [3, 64, 64]
    assert vision.outputs[0].shape == projector.inputs[0].shape == [16, 32]  # 16 patches, CLS dropped
    assert projector.outputs[0].shape == [16, 64]


def test_the_decoder_links_to_the_checkpoint_instead_of_copying_it(model_repository: Path, tiny_llava: Path) -> None:
    link = model_repository / "llava_decoder" / "1" / "checkpoint"
    assert link.is_symlink() and link.resolve() == tiny_llava.resolve()
    config = parse_pbtxt((model_repository / "llava_decoder" / "config.pbtxt").read_text())
    assert config.parameters["checkpoint"].string_value == "checkpoint"
    assert config.model_transaction_policy.decoupled


def test_fuse_projector_exports_one_graph_equal_to_vision_then_projector(
    model_repository: Path, tiny_llava: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repository", repository)
    command = ["llava", "--checkpoint", str(tiny_llava), "--repository", str(repository), "--fuse-projector"]
    assert vlm_export(command) == 0
    assert "PASS llava_vision" in capsys.readouterr().out
    assert not (repository / "llava_projector").exists()
    ensemble = parse_pbtxt((repository / "llava" / "config.pbtxt").read_text())
    assert [step.model_name for step in ensemble.ensemble_scheduling.step] == [
        "llava_admission",
        "llava_preprocess",
        "llava_vision",
        "llava_decoder",
    ]
    pixels = {"pixel_values": np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)}
    with (
        OnnxRunner(repository / "llava_vision" / "1" / ONNX_FILE) as fused,
        OnnxRunner(model_repository / "llava_vision" / "1" / ONNX_FILE) as vision,
        OnnxRunner(model_repository / "llava_projector" / "1" / ONNX_FILE) as projector,
    ):
        expected = projector.run(vision.run(pixels))["image_embeds"]
        np.testing.assert_allclose(fused.run(pixels)["image_embeds"], expected, atol=1e-5)


def test_a_checkpoint_with_several_vision_feature_layers_is_refused_before_any_export(
    tiny_llava: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "two-layers"
    shutil.copytree(tiny_llava, checkpoint)
    config = AutoConfig.from_pretrained(checkpoint)
    config.vision_feature_layer = [-2, -1]
    config.save_pretrained(checkpoint)
    repository = tmp_path / "repository"
    assert vlm_export(["llava", "--checkpoint", str(checkpoint), "--repository", str(repository)]) == 2
    assert "vision_feature_layer: [-2, -1]" in capsys.readouterr().err
    assert not repository.exists()
