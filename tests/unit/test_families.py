"""The family registry: config.json -> family, a clear refusal of what no family serves, and `vlm-export model`
choosing the family itself (the `clip` / `llava` aliases refuse another family's checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.cli import main as vlm_export
from export.families import FAMILIES, UnsupportedCheckpointError, family_for_checkpoint, family_for_config
from export.families.base import ExportOptions
from export.specs import EnsembleSpec, OnnxComponentSpec, PythonModelSpec
from serving.served import PROBE_PARAMETER


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"architectures": ["CLIPModel"], "model_type": "clip"}, "clip"),
        ({"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava"}, "llava"),
        ({"model_type": "llava"}, "llava"),  # no architectures: the model type decides
        ({"architectures": ["LlavaNextForConditionalGeneration"], "model_type": "llava_next"}, "llava_next"),
        ({"architectures": ["SomethingElse", "CLIPModel"]}, "clip"),  # the first one a family lists
    ],
)
def test_a_config_picks_its_family_and_says_why(config: dict[str, object], family: str) -> None:
    choice = family_for_config(config)
    assert choice.family.name == family
    assert "config.json" in choice.reason


def test_an_unknown_architecture_is_refused_naming_it_and_every_supported_one() -> None:
    with pytest.raises(UnsupportedCheckpointError) as caught:
        family_for_config({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3"})
    message = str(caught.value)
    assert "Gemma3ForConditionalGeneration" in message and "gemma3" in message
    for family in FAMILIES:
        for architecture in family.architectures:
            assert architecture in message


def test_a_folder_without_a_readable_config_is_refused_by_path(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCheckpointError, match=r"no config\.json"):
        family_for_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UnsupportedCheckpointError, match="not valid JSON"):
        family_for_checkpoint(tmp_path)


def test_families_have_distinct_names_architectures_and_model_names() -> None:
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    architectures = [a for f in FAMILIES for a in f.architectures]
    assert len(set(architectures)) == len(architectures)
    names = [spec.name for f in FAMILIES for spec in f.models(ExportOptions())]
    assert len(set(names)) == len(names)
    for family in FAMILIES:
        models = family.models(ExportOptions())
        assert all(spec.name.startswith(family.name) for spec in models)
        probes = [s for s in models if isinstance(s, EnsembleSpec) and PROBE_PARAMETER in s.parameters]
        assert len(probes) == 1  # one request shows the checkpoint's python models alive


def test_every_exported_encoder_of_a_family_has_engine_parity_feeds() -> None:
    for family in FAMILIES:
        for options in (ExportOptions(), ExportOptions(fuse_projector=True)):
            encoders = {spec.name for spec in family.models(options) if isinstance(spec, OnnxComponentSpec)}
            assert encoders <= set(family.parity_feeds())
            assert encoders <= {spec.name for spec in family.encoder_variants()}


def test_vlm_export_model_prints_the_family_it_chose_and_why(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vlm_export(["model", "--checkpoint", str(tiny_clip), "--repository", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    assert "family: clip (config.json architectures names CLIPModel)" in out
    assert (tmp_path / "repo" / "clip_vision" / "1" / "model.onnx").is_file()


def test_an_alias_refuses_another_familys_checkpoint_before_exporting(
    tiny_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "repo"
    assert vlm_export(["llava", "--checkpoint", str(tiny_clip), "--repository", str(repository)]) == 2
    assert "is a clip checkpoint" in capsys.readouterr().err
    assert not repository.exists()


def test_an_unsupported_checkpoint_exits_2_naming_its_architecture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["MysteryModel"], "model_type": "mystery"}))
    assert vlm_export(["model", "--checkpoint", str(tmp_path), "--repository", str(tmp_path / "repo")]) == 2
    assert "MysteryModel" in capsys.readouterr().err


@pytest.mark.parametrize("checkpoint", ["tiny_llava", "tiny_llava_full", "tiny_llava_next"])
@pytest.mark.parametrize("size", [(64, 64), (200, 30), (30, 200), (33, 31), (640, 480), (17, 17)])
def test_a_vlms_image_tokens_are_what_its_processor_puts_in_the_prompt(
    checkpoint: str, size: tuple[int, int], request: pytest.FixtureRequest
) -> None:
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor

    folder = request.getfixturevalue(checkpoint)
    config = AutoConfig.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder, backend="pil")
    ids = processor(text="<image> what is this?", images=[Image.new("RGB", size)])["input_ids"][0]
    expected = sum(1 for token in ids if token == config.image_token_index)
    assert family_for_checkpoint(folder).family.image_tokens(config, *size) == expected > 0


def test_what_a_family_hands_its_decoder_is_what_its_decoder_takes() -> None:
    for family in FAMILIES:
        decoders = [s for s in family.models(ExportOptions()) if isinstance(s, PythonModelSpec) and s.decoupled]
        inputs = {tensor.name for decoder in decoders for tensor in decoder.inputs}
        assert set(family.decoder_inputs) <= inputs
        assert bool(family.decoder_inputs) == bool(inputs)  # a family without a decoder hands nothing
