"""The ensembles' doors (serving/admission.py, export/admission.py): the decoder's page closes at its mark, a dead
or absent decoder leaves it open; every ensemble a client calls opens with its checkpoint's admission step, which
every step reading the request waits for, with the marks of that ensemble's queues and decoder."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.catalog import MODEL_PARAMETER
from export.admission import TICKET, admission_step_name, with_admission
from export.families import FAMILIES
from export.families.base import ExportOptions, Family
from export.families.clip.spec import CLIP_MODELS
from export.families.llava.spec import LLAVA_MODELS, MAX_NUM_SEQS, MAX_WAITING_REQUESTS
from export.repository import served_specs
from export.specs import EnsembleSpec, PythonModelSpec
from serving import admission
from serving.admission import (
    ADMISSION_PARAMETER,
    ORDERING_INPUT,
    AdmissionBoard,
    AdmissionDoor,
    door_mark,
    page_path,
    queue_mark,
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


def test_the_llava_ensemble_opens_with_its_admission_step_which_keeps_its_decoders_door() -> None:
    specs = {spec.name: spec for spec in with_admission(LLAVA_MODELS)}
    llava = specs["llava"]
    assert isinstance(llava, EnsembleSpec)
    assert llava.steps[0].model == admission_step_name("llava") == "llava_admission"
    assert llava.steps[1].model == "llava_preprocess" and llava.steps[1].input_map[ORDERING_INPUT] == TICKET
    step = specs["llava_admission"]
    assert isinstance(step, PythonModelSpec)
    (plan,) = json.loads(step.parameters[ADMISSION_PARAMETER]).values()
    assert plan["decoder"] == "llava_decoder"
    vision = specs["llava_vision"]
    assert vision.queue is not None
    mark = queue_mark(vision.queue.max_queue_size)
    # a request's images and videos are the tower's items, and the door takes them to count them
    vision_plan = {"after": ["llava_preprocess"], "mark": mark, "batches": True, "items": ["image", "video"]}
    assert plan["steps"]["llava_vision"] == vision_plan
    assert {tensor.name for tensor in step.inputs} == {"messages", "image", "video"}
    assert all(tensor.optional for tensor in step.inputs)
    assert llava.steps[0].input_map == {"messages": "messages", "image": "image", "video": "video"}
    decoder = {"after": ["llava_preprocess", "llava_projector"], "mark": None, "batches": False, "items": []}
    assert plan["steps"]["llava_decoder"] == decoder  # it keeps its own door, above


def test_one_admission_step_serves_every_clip_ensemble_each_with_its_own_marks() -> None:
    specs = {spec.name: spec for spec in with_admission(CLIP_MODELS)}
    step = specs["clip_admission"]
    assert isinstance(step, PythonModelSpec)
    plans = json.loads(step.parameters[ADMISSION_PARAMETER])
    assert set(plans) == {f"{TICKET}_clip_image_embed", f"{TICKET}_clip_text_embed", f"{TICKET}_clip_rank"}
    assert set(plans[f"{TICKET}_clip_image_embed"]["steps"]) == {"clip_preprocess", "clip_vision"}
    assert set(plans[f"{TICKET}_clip_text_embed"]["steps"]) == {"clip_tokenize", "clip_text"}  # images never close it
    # the scoring step reads both towers: its queue is reached on either path, never on both at once
    assert plans[f"{TICKET}_clip_rank"]["steps"]["clip_similarity"]["after"] == ["clip_text", "clip_vision"]
    # each tower weighs a request by its own list: the image tower by images (not through the tokenizer it waits
    # for), the text tower by texts
    rank_items = {name: entry["items"] for name, entry in plans[f"{TICKET}_clip_rank"]["steps"].items()}
    assert rank_items == {
        "clip_tokenize": [],
        "clip_text": ["text"],
        "clip_preprocess": [],
        "clip_vision": ["image"],
        "clip_similarity": [],
    }
    rank = specs["clip_rank"]
    assert isinstance(rank, EnsembleSpec)
    waits = {step.model: step.input_map.get(ORDERING_INPUT) for step in rank.steps}
    # The rank ensemble's image step still waits for the tokenizer, which waits for the ticket.
    assert waits["clip_tokenize"] == TICKET and waits["clip_preprocess"] == "attention_mask"
    assert with_admission(with_admission(CLIP_MODELS)) == with_admission(CLIP_MODELS)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_every_ensemble_a_client_calls_opens_with_its_checkpoints_admission_step(family: Family) -> None:
    specs = served_specs(family, ExportOptions())
    by_name = {spec.name: spec for spec in specs}
    step = by_name[admission_step_name(family.name)]
    assert isinstance(step, PythonModelSpec)
    plans = json.loads(step.parameters[ADMISSION_PARAMETER])
    called = [spec for spec in specs if isinstance(spec, EnsembleSpec) and MODEL_PARAMETER in spec.parameters]
    assert called and len(plans) == len(called)
    for ensemble in called:
        assert ensemble.steps[0].model == step.name
        given = {tensor.name for tensor in ensemble.inputs}
        for entry in ensemble.steps[1:]:
            if set(entry.input_map.values()) - {TICKET} <= given:  # every step that reads only the request waits
                assert entry.input_map[ORDERING_INPUT] == TICKET, (ensemble.name, entry.model)
        plan = plans[f"{TICKET}_{ensemble.name}"]
        decoders = [s.model for s in ensemble.steps if getattr(by_name[s.model], "decoupled", False)]
        assert plan["decoder"] == (decoders[0] if decoders else None)
        assert set(plan["steps"]) == {s.model for s in ensemble.steps[1:]}
        for model, entry in plan["steps"].items():
            queue = by_name[model].queue
            assert entry["mark"] == (queue_mark(queue.max_queue_size) if queue else None)


def test_a_queue_mark_is_half_the_queue() -> None:
    assert queue_mark(32) == 16
    assert queue_mark(1) == 1
