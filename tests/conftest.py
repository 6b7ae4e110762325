"""Session-wide artifacts: one tiny CLIP checkpoint and one exported repository for the whole run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.parity import ParityReport

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.presets import build_preset

    return build_preset("tiny-clip", tmp_path_factory.mktemp("checkpoints") / "tiny-clip")


@pytest.fixture(scope="session")
def exported_clip(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ParityReport]]:
    """A copy of the checked-in repository with tiny-clip exported into it (the tree stays clean)."""
    from export.clip_export import export_clip

    repository = tmp_path_factory.mktemp("repo") / "model_repository"
    shutil.copytree(REPO_ROOT / "model_repository", repository)
    return repository, export_clip(tiny_clip, repository)


@pytest.fixture(scope="session")
def clip_repository(exported_clip: tuple[Path, list[ParityReport]]) -> Path:
    return exported_clip[0]
