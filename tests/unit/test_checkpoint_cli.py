"""``vlm-checkpoint evaluate`` refuses what it cannot score before loading anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoints.cli import main as vlm_checkpoint


def test_evaluate_refuses_a_folder_without_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vlm_checkpoint(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_evaluate_refuses_a_model_type_without_a_shapes_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mllama"}))
    assert vlm_checkpoint(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'mllama'" in err and "clip" in err and "llava" in err
