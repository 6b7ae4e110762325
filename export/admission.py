"""The admission step of each checkpoint (serving/admission.py), added to its specs: one python model,
``<name>_admission``, that opens every ensemble a client calls. Derived from the ensembles, so no family names its
door: the step takes one of the ensemble's inputs that every request carries (to be scheduled) and those whose
elements it counts, and gives the ticket that every entry step (a python step reading only the ensemble's inputs)
waits for through ``wait_for``. Its plan for each ensemble: the steps, each with the steps it reads from, whether it
batches (and then the inputs whose elements are its items) and, where it bounds its queue, half that queue as its
mark; and the decoder's door when the ensemble streams from exactly one decoupled python step
(its decoder)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from client.catalog import MODEL_PARAMETER
from export.families.limits import ENTRY_STEP, STEP_QUEUE
from export.specs import EnsembleSpec, EnsembleStep, ModelSpec, PythonModelSpec, TensorSpec
from serving.admission import ADMISSION_PARAMETER, ORDERING_INPUT, Step, queue_mark

ADMISSION_ENTRY_POINT = "serving.triton_models.admission_step:AdmissionStep"
TICKET = "admitted"  # the ensemble tensor the entry steps wait for
ORDERING = TensorSpec(ORDERING_INPUT, "int64", (-1, -1), optional=True)


def admission_step_name(model: str) -> str:
    return f"{model}_admission"


@dataclass(frozen=True)
class Door:
    ensemble: EnsembleSpec
    entries: tuple[str, ...]  # the steps that wait for the ticket
    steps: dict[str, Step]
    decoder: str | None

    @property
    def output(self) -> str:
        """The admission step's output for this ensemble (a tensor name: a model name's ``-`` and ``.`` become _)."""
        return re.sub(r"\W", "_", f"{TICKET}_{self.ensemble.name}")

    @property
    def trigger(self) -> TensorSpec:
        """The ensemble input the admission step takes: one every request carries, so Triton always schedules it."""
        inputs = self.ensemble.inputs
        return next((tensor for tensor in inputs if not tensor.optional), inputs[0])

    @property
    def read(self) -> tuple[TensorSpec, ...]:
        """The ensemble inputs the admission step takes: the trigger, and those whose elements it counts."""
        counted = {name for step in self.steps.values() for name in step.items}
        return (self.trigger, *(t for t in self.ensemble.inputs if t.name in counted and t.name != self.trigger.name))


def _door(ensemble: EnsembleSpec, by_name: dict[str, ModelSpec]) -> Door | None:
    """None for an ensemble no client calls (untagged), one that already opens with its admission step, or one that
    a step other than a python one enters."""
    if MODEL_PARAMETER not in ensemble.parameters or _admits(by_name.get(ensemble.steps[0].model)):
        return None
    given = {tensor.name for tensor in ensemble.inputs}
    entries = [step.model for step in ensemble.steps if set(step.input_map.values()) <= given]
    if not entries or not all(isinstance(by_name.get(entry), PythonModelSpec) for entry in entries):
        return None
    steps = [by_name[step.model] for step in ensemble.steps if step.model in by_name]
    before = _after(ensemble)
    fed = _fed_by(ensemble)
    graph = {
        spec.name: Step(
            tuple(sorted(before[spec.name])),
            queue_mark(spec.queue.max_queue_size) if spec.queue else None,
            spec.max_batch_size > 0,
            tuple(sorted(fed[spec.name])) if spec.max_batch_size > 0 else (),
        )
        for spec in steps
    }
    decoders = [spec.name for spec in steps if isinstance(spec, PythonModelSpec) and spec.decoupled]
    return Door(ensemble, tuple(entries), graph, decoders[0] if len(decoders) == 1 else None)


def _after(ensemble: EnsembleSpec) -> dict[str, set[str]]:
    """Step -> the steps whose outputs it reads."""
    producer = {tensor: step.model for step in ensemble.steps for tensor in step.output_map.values()}
    return {step.model: {producer[t] for t in step.input_map.values() if t in producer} for step in ensemble.steps}


def _fed_by(ensemble: EnsembleSpec) -> dict[str, set[str]]:
    """Step -> the ensemble inputs that are lists of encoded items (images, videos, texts: bytes of shape [-1]) and
    whose data reach it; an ordering input carries none."""
    lists = {tensor.name for tensor in ensemble.inputs if tensor.dtype == "bytes" and tensor.dims == (-1,)}
    producer = {tensor: step.model for step in ensemble.steps for tensor in step.output_map.values()}
    fed: dict[str, set[str]] = {}
    for step in ensemble.steps:  # in order: a step's producers come before it
        read = {tensor for name, tensor in step.input_map.items() if name != ORDERING_INPUT}
        fed[step.model] = (read & lists).union(*(fed.get(producer[t], set()) for t in read if t in producer))
    return fed


def _admits(spec: ModelSpec | None) -> bool:
    return isinstance(spec, PythonModelSpec) and spec.entry_point == ADMISSION_ENTRY_POINT


def _admission_step(name: str, doors: list[Door]) -> PythonModelSpec:
    inputs: dict[str, TensorSpec] = {}
    for door in doors:
        for tensor in door.read:
            inputs.setdefault(tensor.name, replace(tensor, optional=True, value_range=None))
    marks = {
        door.output: {
            "steps": {
                name: {"after": list(step.after), "mark": step.mark, "batches": step.batches, "items": list(step.items)}
                for name, step in door.steps.items()
            },
            "decoder": door.decoder,
        }
        for door in doors
    }
    return PythonModelSpec(
        name=name,
        inputs=tuple(inputs.values()),
        outputs=tuple(TensorSpec(door.output, "int64", (1, 1)) for door in doors),
        entry_point=ADMISSION_ENTRY_POINT,
        resources=ENTRY_STEP,  # as every step a request enters: a full queue refuses at once
        queue=STEP_QUEUE,
        parameters={ADMISSION_PARAMETER: json.dumps(marks, sort_keys=True)},
    )


def _admitted(door: Door, step_name: str) -> EnsembleSpec:
    ticket = EnsembleStep(step_name, {tensor.name: tensor.name for tensor in door.read}, {door.output: TICKET})
    steps = tuple(
        replace(step, input_map={**step.input_map, ORDERING_INPUT: TICKET}) if step.model in door.entries else step
        for step in door.ensemble.steps
    )
    return replace(door.ensemble, steps=(ticket, *steps))


def _waits(spec: PythonModelSpec) -> PythonModelSpec:
    if any(tensor.name == ORDERING_INPUT for tensor in spec.inputs):
        return spec
    return replace(spec, inputs=(*spec.inputs, ORDERING))


def with_admission(specs: Iterable[ModelSpec]) -> tuple[ModelSpec, ...]:
    """``specs`` (one or more checkpoints') with each checkpoint's admission step in front of its ensembles; specs
    that have theirs already stay as they are."""
    specs = tuple(specs)
    by_name = {spec.name: spec for spec in specs}
    doors = [door for spec in specs if isinstance(spec, EnsembleSpec) and (door := _door(spec, by_name))]
    by_checkpoint: dict[str, list[Door]] = {}
    for door in doors:
        by_checkpoint.setdefault(door.ensemble.parameters[MODEL_PARAMETER], []).append(door)
    steps = {name: _admission_step(admission_step_name(name), found) for name, found in by_checkpoint.items()}
    admitted = {
        door.ensemble.name: _admitted(door, admission_step_name(checkpoint))
        for checkpoint, found in by_checkpoint.items()
        for door in found
    }
    entries = {entry for door in doors for entry in door.entries}
    rewritten: list[ModelSpec] = []
    for spec in specs:
        if spec.name in admitted:
            rewritten.append(admitted[spec.name])
        elif spec.name in entries and isinstance(spec, PythonModelSpec):
            rewritten.append(_waits(spec))
        else:
            rewritten.append(spec)
    return (*rewritten, *steps.values())
