"""The chat ensemble's door (serving/admission.py, export/admission.py): the entry step reads what its decoder
publishes and closes at the mark; a dead or absent decoder leaves it open; every chat ensemble's first step, and no
other step, is told its decoder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.admission import admission_doors, with_admission_doors
from export.families import FAMILIES
from export.families.base import ExportOptions, Family
from export.families.clip.spec import CLIP_MODELS
from export.families.llava.spec import LLAVA_MODELS, MAX_NUM_SEQS, MAX_WAITING_REQUESTS
from export.specs import EnsembleSpec, PythonModelSpec
from serving import admission
from serving.admission import (
    ADMISSION_DECODER_PARAMETER,
    AdmissionBoard,
    AdmissionDoor,
    door_mark,
    page_path,
    remove_pages,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def decoder_name(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"test_decoder_{request.node.name[:40]}"
    yield name
    page_path(os.getppid(), name).unlink(missing_ok=True)


def test_the_door_closes_at_the_mark_and_opens_below_it(decoder_name: str) -> None:
    door = AdmissionDoor(decoder_name)
    assert not door.closed()  # no decoder yet: it answers for itself
    board = AdmissionBoard(decoder_name, mark=3)
    assert not door.closed()
    board.publish(2)
    assert not door.closed()
    board.publish(3)
    assert door.closed() and decoder_name in door.reason()
    board.publish(2)
    assert not door.closed()
    board.publish(5)
    board.close()  # a decoder that stops opens the door, and leaves the page for its reload
    assert not door.closed()
    reloaded = AdmissionBoard(decoder_name, mark=3)
    reloaded.publish(3)
    assert door.closed()  # the door kept its mapping of the same page


def test_a_dead_decoders_page_leaves_the_door_open(decoder_name: str) -> None:
    board = AdmissionBoard(decoder_name, mark=1)
    board.publish(4)
    door = AdmissionDoor(decoder_name)
    assert door.closed()
    gone = subprocess.Popen(["true"])
    gone.wait()
    board.page[0:4] = gone.pid.to_bytes(4, "little")  # as a killed decoder leaves it
    assert not door.closed()


def test_a_decoder_without_a_page_serves_and_its_door_stays_open(
    decoder_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(admission, "_FOLDER", tmp_path / "missing")  # as a read-only or absent /dev/shm
    board = AdmissionBoard(decoder_name, mark=1)
    assert board.error is not None and "the door stays open" in board.error
    board.publish(5)
    assert not AdmissionDoor(decoder_name).closed()
    board.close()


def test_the_launcher_removes_a_servers_pages(decoder_name: str) -> None:
    board = AdmissionBoard(decoder_name, mark=1)
    assert board.path.exists()
    remove_pages(os.getppid())
    assert not board.path.exists()


def test_the_mark_keeps_every_running_slot_and_half_the_waiting_list() -> None:
    assert door_mark(16, 16) == 24
    assert door_mark(4, 1) == 5
    assert door_mark(MAX_NUM_SEQS, MAX_WAITING_REQUESTS) < MAX_NUM_SEQS + MAX_WAITING_REQUESTS


def test_each_chat_ensembles_first_step_keeps_its_decoders_door_and_no_other_step_does() -> None:
    assert admission_doors((*CLIP_MODELS, *LLAVA_MODELS)) == {"llava_preprocess": "llava_decoder"}
    parameters = {
        spec.name: spec.parameters.get(ADMISSION_DECODER_PARAMETER)
        for spec in with_admission_doors(LLAVA_MODELS)
        if isinstance(spec, PythonModelSpec)
    }
    assert parameters.pop("llava_preprocess") == "llava_decoder"
    assert set(parameters.values()) == {None}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_every_familys_chat_ensemble_gets_a_door_on_its_entry_step(family: Family) -> None:
    models = family.models(ExportOptions())
    decoders = {spec.name for spec in models if isinstance(spec, PythonModelSpec) and spec.decoupled}
    doors = admission_doors(models)
    assert set(doors.values()) == decoders
    entries = {ensemble.steps[0].model for ensemble in models if isinstance(ensemble, EnsembleSpec)}
    assert set(doors) <= entries
