"""serving.probe without a server: which families it probes and how it refuses what the repository lacks (the
probes themselves run against a real server in tests/server/test_probe.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import probe
from serving.served import PROBE_TASKS, Probe
from tests.conftest import REPO_ROOT

CHECKED_IN = str(REPO_ROOT / "model_repository")


def test_every_probe_task_a_config_may_name_has_a_probe() -> None:
    assert set(probe.PROBES) == set(PROBE_TASKS)


def _probed(monkeypatch: pytest.MonkeyPatch, argv: list[str], repository: str = CHECKED_IN) -> list[tuple[str, Probe]]:
    seen: list[tuple[str, Probe]] = []

    def check(kind: str, url: str, probes: list[tuple[str, Probe]], timeout_s: float) -> tuple[bool, list[str]]:
        seen.extend(probes)
        return True, []

    monkeypatch.setattr(probe, "check", check)
    assert probe.main(["ready", "--repository", repository, *argv]) == 0
    return seen


def test_by_default_every_family_of_the_repository_is_probed_with_its_configs_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VLM_FAMILIES", raising=False)
    assert _probed(monkeypatch, []) == [("clip", Probe("clip_rank", "rank")), ("llava", Probe("llava", "chat"))]
    assert _probed(monkeypatch, ["--family", "llava"]) == [("llava", Probe("llava", "chat"))]
    monkeypatch.setenv("VLM_FAMILIES", "clip")
    assert _probed(monkeypatch, []) == [("clip", Probe("clip_rank", "rank"))]


def test_a_family_the_repository_lacks_is_refused_naming_the_ones_it_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VLM_FAMILIES", "clip gemma")
    with pytest.raises(SystemExit) as exited:
        probe.main(["live", "--repository", CHECKED_IN])
    assert exited.value.code == 2
    assert "holds no family 'gemma'; it holds: clip, llava" in capsys.readouterr().err


def test_the_repository_defaults_to_vlm_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VLM_REPOSITORY", str(tmp_path))
    monkeypatch.delenv("VLM_FAMILIES", raising=False)
    with pytest.raises(SystemExit, match="2"):
        probe.main(["ready"])  # an empty folder: no family to probe


def test_every_named_checkpoint_is_probed_and_models_are_picked_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from export.families import family_named
    from export.families.base import ExportOptions
    from export.repository import ALL_MODELS, write_repository

    write_repository(tmp_path, ALL_MODELS)
    write_repository(tmp_path, family_named("clip").models(ExportOptions(name="clip-b")))
    monkeypatch.delenv("VLM_FAMILIES", raising=False)
    monkeypatch.delenv("VLM_MODELS", raising=False)
    repository: list[str] = []
    every = [
        ("clip", Probe("clip_rank", "rank")),
        ("clip-b", Probe("clip-b_rank", "rank")),
        ("llava", Probe("llava", "chat")),
    ]
    folder = str(tmp_path)
    assert _probed(monkeypatch, repository, folder) == every
    assert _probed(monkeypatch, ["--family", "clip"], folder) == every[:2]
    assert _probed(monkeypatch, ["--model", "clip-b", "--model", "llava"], folder) == every[1:]
    monkeypatch.setenv("VLM_MODELS", "clip-b")
    assert _probed(monkeypatch, repository, folder) == [every[1]]
