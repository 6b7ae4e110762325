"""Served zero-shot accuracy equals in-process accuracy on the shapes world's held-out images, over both
protocols (a short training schedule and a subset keep it fast; the full preset's figures are in the README)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.cli import main as vlm_export
from export.clip_export import export_clip
from export.clip_training import short_schedule, train_clip
from export.shapes_eval import evaluate_clip, evaluate_served_clip
from serving.launcher import TritonServer, loopback_options
from tests.conftest import REPO_ROOT

HELD_OUT = 48


@pytest.fixture(scope="module")
def shapes_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_clip(tmp_path_factory.mktemp("checkpoints") / "shapes-clip", short_schedule(60), progress=False)


@pytest.fixture(scope="module")
def shapes_server(shapes_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("shapes-repo") / "model_repository"
    shutil.copytree(REPO_ROOT / "model_repository", repository)
    assert all(report.passed for report in export_clip(shapes_checkpoint, repository))
    options = loopback_options(repository, repository.parent / "server.log", exit_timeout_s=2, models=("clip_rank",))
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


def test_vlm_export_evaluate_prints_both_rows(
    shapes_checkpoint: Path, shapes_server: TritonServer, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["evaluate", "--checkpoint", str(shapes_checkpoint), "--count", "12", "--url", shapes_server.grpc_url]
    assert vlm_export([*command, "--protocol", "grpc"]) == 0
    out = capsys.readouterr().out
    assert "in-process" in out and "served (grpc)" in out and "12 held-out" in out
