"""`vlm-export model --name`: a checkpoint's Triton models are prefixed with its name, its ensembles run the prefixed
steps and are tagged with what a front door routes by; the default names stay the families' own; a repository holding
several named checkpoints is read back, regenerated whole and refuses a name that would take another's models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from client.catalog import CatalogError, ServedModel, check_model_name, collect
from client.models import ModelNames
from export.cli import main as vlm_export
from export.families import FAMILIES, family_named
from export.families.base import MODEL_VARIANTS, ExportOptions
from export.repository import (
    ALL_MODELS,
    NameConflictError,
    check_name,
    checkpoints_in,
    repository_specs,
    stale_files,
    write_repository,
)
from export.specs import EnsembleSpec
from serving.served import members, select_models, served_families, served_models
from tests.conftest import REPO_ROOT

NAME = "team-b.v2"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@pytest.mark.parametrize("variant", MODEL_VARIANTS, ids=["plain", "fused"])
def test_every_model_of_a_named_checkpoint_is_prefixed_and_its_ensembles_run_only_its_own_steps(
    family: object, variant: ExportOptions
) -> None:
    from dataclasses import replace

    models = family.models(replace(variant, name=NAME))  # type: ignore[attr-defined]
    names = {spec.name for spec in models}
    assert all(name == NAME or name.startswith(f"{NAME}_") for name in names)
    defaults = {spec.name for spec in family.models(variant)}  # type: ignore[attr-defined]
    assert {name.replace(NAME, family.name, 1) for name in names} == defaults  # type: ignore[attr-defined]
    ensembles = [spec for spec in models if isinstance(spec, EnsembleSpec)]
    assert ensembles
    for ensemble in ensembles:
        assert {step.model for step in ensemble.steps} <= names - {ensemble.name}
        tags = ensemble.parameters
        assert tags["vlm_model"] == NAME and tags["vlm_family"] == family.name  # type: ignore[attr-defined]
        assert tags["vlm_kind"] in ("embedding", "chat") and tags["vlm_task"]
        if "vlm_text_model" in tags:
            assert tags["vlm_text_model"] in names
    assert sum("vlm_probe" in e.parameters for e in ensembles) == 1


def test_the_default_name_is_the_familys_and_gives_the_checked_in_names() -> None:
    for family in FAMILIES:
        assert family.models(ExportOptions(name=family.name)) == family.models(ExportOptions())
    assert {spec.name for spec in ALL_MODELS} == {
        path.parent.name for path in (REPO_ROOT / "model_repository").glob("*/config.pbtxt")
    }


@pytest.mark.parametrize("name", ["", "a b", "-x", ".x", "x/y", "x..y", "é", "x" * 65, "_x"])
def test_a_name_that_cannot_name_triton_models_is_refused_saying_why(name: str) -> None:
    with pytest.raises(CatalogError, match="not a valid model name"):
        check_model_name(name)
    with pytest.raises(ValueError, match="not a valid model name"):
        ExportOptions(name=name)


def _repository(tmp_path: Path) -> Path:
    """The checked-in defaults (CLIP, LLaVA), a second CLIP named NAME and a fused LLaVA named 'chat-2'."""
    root = tmp_path / "repo"
    write_repository(root, ALL_MODELS)
    write_repository(root, family_named("clip").models(ExportOptions(name=NAME)))
    write_repository(root, family_named("llava").models(ExportOptions(name="chat-2", fuse_projector=True)))
    return root


def test_a_repository_of_named_checkpoints_is_read_back_by_name_with_each_ones_models(tmp_path: Path) -> None:
    root = _repository(tmp_path)
    served = served_models(root)
    assert list(served) == ["chat-2", "clip", "llava", NAME]
    named = served[NAME]
    assert (named.family, named.kind, named.probe) == ("clip", "embedding", (f"{NAME}_rank", "rank"))
    assert named.model_names() == ModelNames.of(embedding_model=NAME)
    chat = served["chat-2"]
    assert (chat.kind, chat.text_model, chat.entry_models) == ("chat", "chat-2_decoder", ("chat-2", "chat-2_decoder"))
    assert chat.model_names() == ModelNames.of(chat_model="chat-2")
    assert served_families(root)["clip"].names == ("clip", NAME)
    assert members(root)["chat-2"] == {
        *("chat-2", "chat-2_admission", "chat-2_preprocess", "chat-2_vision", "chat-2_decoder")
    }
    assert [m.name for m in select_models(root, [NAME, "llava"])] == [NAME, "llava"]


def test_regenerating_keeps_every_named_checkpoint_and_its_variant(tmp_path: Path) -> None:
    root = _repository(tmp_path)
    found = {(c.family.name, c.name, c.options.fuse_projector) for c in checkpoints_in(root)}
    assert found == {
        ("clip", "clip", False),
        ("clip", NAME, False),
        ("llava", "llava", False),
        ("llava", "chat-2", True),
    }
    assert stale_files(root) == []
    assert not (root / "chat-2_projector").exists()
    assert vlm_export(["repository", "--repository", str(root), "--check"]) == 0
    (root / f"{NAME}_rank" / "config.pbtxt").write_text(
        "# hand-edited\n" + (root / f"{NAME}_rank" / "config.pbtxt").read_text()
    )
    assert stale_files(root) == [f"{NAME}_rank/config.pbtxt"]
    assert vlm_export(["repository", "--repository", str(root)]) == 0
    assert stale_files(root) == [] and len(repository_specs(root)) == len({s.name for s in repository_specs(root)})


def test_configs_tagged_before_names_read_as_the_familys_default_names(tmp_path: Path) -> None:
    root = tmp_path / "old"
    shutil.copytree(REPO_ROOT / "model_repository", root)
    for path in root.glob("*/config.pbtxt"):  # as written before names: only vlm_family (and vlm_probe)
        text = path.read_text()
        for key in ("vlm_model", "vlm_kind", "vlm_task", "vlm_text_model"):
            text = _without_parameter(text, key)
        path.write_text(text)
    served = served_models(root)
    assert {name: model.kind for name, model in served.items()} == {"clip": "embedding", "llava": "chat"}
    assert served["llava"].text_model == "llava_decoder" and served["clip"].model_names() == ModelNames()
    assert sorted(stale_files(root)) == [
        "clip_image_embed/config.pbtxt",
        "clip_rank/config.pbtxt",
        "clip_text_embed/config.pbtxt",
        "llava/config.pbtxt",
    ]


def _without_parameter(text: str, key: str) -> str:
    start = text.find(f'parameters {{\n  key: "{key}"')
    if start < 0:
        return text
    end = text.index("\n}\n", start) + 3
    return text[:start] + text[end:]


@pytest.mark.parametrize(
    ("family", "name", "message"),
    [
        ("siglip", "clip", "already serves a clip model named 'clip'"),
        ("llava", NAME, "already serves a clip model named"),
        ("llava", "clip_rank", "its Triton models clip_rank would replace those of the clip model 'clip'"),
        ("llava", "clip_text", "its Triton models clip_text would replace those of the clip model 'clip'"),  # a step
        ("clip", "clip_image", None),  # clip_image_image_embed, ...: near, but no model of another
        ("llava", "clip-x", None),  # a new name that takes nothing
        ("clip", NAME, None),  # the same checkpoint's name again: a re-export
    ],
)
def test_a_name_that_would_take_another_checkpoints_models_is_refused(
    tmp_path: Path, family: str, name: str, message: str | None
) -> None:
    root = _repository(tmp_path)
    options = ExportOptions(name=name)
    if message is None:
        check_name(root, family_named(family), options)
    else:
        with pytest.raises(NameConflictError, match=message):
            check_name(root, family_named(family), options)


def test_vlm_export_model_refuses_a_bad_or_taken_name_before_exporting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repository(tmp_path)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"architectures": ["SiglipModel"]}))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for name, message in (("a b", "not a valid model name"), ("chat-2", "already serves a llava model named 'chat-2'")):
        assert vlm_export(["model", "--checkpoint", str(checkpoint), "--repository", str(root), "--name", name]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_one_name_tagged_on_two_families_is_a_contradiction_named() -> None:
    tags = {"vlm_family": "clip", "vlm_model": "x", "vlm_kind": "embedding", "vlm_task": "rank"}
    with pytest.raises(CatalogError, match="the name 'x' is given to models of more than one checkpoint"):
        collect([("x_rank", tags), ("x", {**tags, "vlm_family": "llava", "vlm_kind": "chat", "vlm_task": "chat"})])
    assert collect([("other", {"unrelated": "1"})]) == {}
    assert isinstance(collect([("x_rank", tags)])["x"], ServedModel)
