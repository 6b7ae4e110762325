"""Served accuracy equals in-process accuracy on the shapes world's held-out split, over both protocols:
CLIP's zero-shot colour and shape, LLaVA's exact-match answers and caption attributes (short training
schedules and a subset keep it fast; the full presets' figures are in the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpoints.cli import main as vlm_checkpoint
from checkpoints.shapes_eval import evaluate_clip, evaluate_served_clip
from checkpoints.shapes_vqa_eval import evaluate_llava, evaluate_served_llava
from serving.launcher import TritonServer
from tests.server.family_servers import TEST_TIMEOUT_S, FamilyExport

HELD_OUT = 48
HELD_OUT_SCENES = 6
# Both checkpoints (tests/server/conftest.py) exported as a user would, each under a name of its own, into one
# repository, served by a family server (tests/server/family_servers.py) beside another module's checkpoint.
CLIP, LLAVA = "shapes-clip", "shapes-llava"
EXPORT = FamilyExport(
    "shapes",
    "shapes_llava",
    arguments=("--name", LLAVA),
    beside=FamilyExport("shapes_clip", "shapes_checkpoint", arguments=("--name", CLIP)),
)
pytestmark = [pytest.mark.timeout(TEST_TIMEOUT_S), EXPORT.mark]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_accuracy_equals_in_process_accuracy(
    shapes_checkpoint: Path, family_server: TritonServer, protocol: str
) -> None:
    url = family_server.grpc_url if protocol == "grpc" else family_server.http_url
    served = evaluate_served_clip(shapes_checkpoint, HELD_OUT, url, protocol, CLIP)
    assert served == evaluate_clip(shapes_checkpoint, HELD_OUT)
    assert served["count"] == HELD_OUT


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_answers_score_as_in_process_answers(
    shapes_llava: Path, family_server: TritonServer, protocol: str
) -> None:
    url = family_server.grpc_url if protocol == "grpc" else family_server.http_url
    served = evaluate_served_llava(shapes_llava, HELD_OUT_SCENES, url, protocol, LLAVA)
    assert served == evaluate_llava(shapes_llava, HELD_OUT_SCENES)
    assert served["images"] == HELD_OUT_SCENES and served["questions"] > HELD_OUT_SCENES


def test_vlm_checkpoint_evaluate_prints_both_rows(
    shapes_checkpoint: Path, family_server: TritonServer, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["evaluate", "--checkpoint", str(shapes_checkpoint), "--count", "12", "--url", family_server.grpc_url]
    assert vlm_checkpoint([*command, "--model", CLIP, "--protocol", "grpc"]) == 0
    out = capsys.readouterr().out
    assert "in-process" in out and "served (grpc)" in out and "12 held-out" in out


def test_vlm_checkpoint_evaluate_scores_a_llava_checkpoint(
    shapes_llava: Path, family_server: TritonServer, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["evaluate", "--checkpoint", str(shapes_llava), "--count", "2", "--url", family_server.http_url]
    assert vlm_checkpoint([*command, "--model", LLAVA, "--protocol", "http"]) == 0
    out = capsys.readouterr().out
    assert "exact match" in out and "caption attributes" in out and "served (http)" in out and "2 held-out" in out
