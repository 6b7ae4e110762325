"""Served accuracy equals in-process accuracy on the shapes world's held-out split, over both protocols:
CLIP's zero-shot colour and shape, LLaVA's exact-match answers and caption attributes (short training
schedules and a subset keep it fast; the full presets' figures are in the README)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints import llava_training
from checkpoints.cli import main as vlm_checkpoint
from checkpoints.clip_training import short_schedule, train_clip
from checkpoints.shapes_eval import evaluate_clip, evaluate_served_clip
from checkpoints.shapes_vqa_eval import evaluate_llava, evaluate_served_llava
from export.families.base import ExportOptions
from export.families.clip.family import CLIP_FAMILY
from export.families.llava.exporter import export_llava
from serving.launcher import TritonServer, loopback_options
from tests.conftest import REPO_ROOT

HELD_OUT = 48
HELD_OUT_SCENES = 6
CLIP_SCHEDULE = short_schedule(60)
LLAVA_SCHEDULE = dataclasses.replace(llava_training.short_schedule(20), clip=CLIP_SCHEDULE)


@pytest.fixture(scope="module")
def shapes_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_clip(tmp_path_factory.mktemp("checkpoints") / "shapes-clip", CLIP_SCHEDULE, progress=False)


@pytest.fixture(scope="module")
def shapes_llava(shapes_checkpoint: Path) -> Path:
    out = shapes_checkpoint.parent / "shapes-llava"
    return llava_training.train_llava(out, shapes_checkpoint, LLAVA_SCHEDULE, progress=False)


@pytest.fixture(scope="module")
def shapes_server(
    shapes_checkpoint: Path, shapes_llava: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("shapes-repo") / "model_repository"
    shutil.copytree(REPO_ROOT / "model_repository", repository)
    assert all(report.passed for report in CLIP_FAMILY.export(shapes_checkpoint, repository, ExportOptions()))
    assert all(report.passed for report in export_llava(shapes_llava, repository))
    models = ("clip_rank", "llava")
    options = loopback_options(repository, repository.parent / "server.log", exit_timeout_s=2, models=models)
    with TritonServer(options) as server:
        yield server


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_accuracy_equals_in_process_accuracy(
    shapes_checkpoint: Path, shapes_server: TritonServer, protocol: str
) -> None:
    url = shapes_server.grpc_url if protocol == "grpc" else shapes_server.http_url
    served = evaluate_served_clip(shapes_checkpoint, HELD_OUT, url, protocol)
    assert served == evaluate_clip(shapes_checkpoint, HELD_OUT)
    assert served["count"] == HELD_OUT


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_answers_score_as_in_process_answers(
    shapes_llava: Path, shapes_server: TritonServer, protocol: str
) -> None:
    url = shapes_server.grpc_url if protocol == "grpc" else shapes_server.http_url
    served = evaluate_served_llava(shapes_llava, HELD_OUT_SCENES, url, protocol)
    assert served == evaluate_llava(shapes_llava, HELD_OUT_SCENES)
    assert served["images"] == HELD_OUT_SCENES and served["questions"] > HELD_OUT_SCENES


def test_vlm_checkpoint_evaluate_prints_both_rows(
    shapes_checkpoint: Path, shapes_server: TritonServer, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["evaluate", "--checkpoint", str(shapes_checkpoint), "--count", "12", "--url", shapes_server.grpc_url]
    assert vlm_checkpoint([*command, "--protocol", "grpc"]) == 0
    out = capsys.readouterr().out
    assert "in-process" in out and "served (grpc)" in out and "12 held-out" in out


def test_vlm_checkpoint_evaluate_scores_a_llava_checkpoint(
    shapes_llava: Path, shapes_server: TritonServer, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["evaluate", "--checkpoint", str(shapes_llava), "--count", "2", "--url", shapes_server.http_url]
    assert vlm_checkpoint([*command, "--protocol", "http"]) == 0
    out = capsys.readouterr().out
    assert "exact match" in out and "caption attributes" in out and "served (http)" in out and "2 held-out" in out
