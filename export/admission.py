"""Each chat ensemble's first step keeps its decoder's door (serving/admission.py): the step is told the decoder's
name in a config parameter. Derived from the ensembles' steps, so no family names its door: a step is a door when it
opens exactly one ensemble, and that ensemble streams from exactly one decoupled python step (its decoder)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from export.specs import EnsembleSpec, ModelSpec, PythonModelSpec
from serving.admission import ADMISSION_DECODER_PARAMETER


def admission_doors(specs: Iterable[ModelSpec]) -> dict[str, str]:
    """Entry step -> the decoder whose door it keeps."""
    specs = tuple(specs)
    by_name = {spec.name: spec for spec in specs}
    ensembles = [spec for spec in specs if isinstance(spec, EnsembleSpec)]
    steps_used = Counter(step.model for ensemble in ensembles for step in ensemble.steps)
    streaming = {spec.name for spec in specs if isinstance(spec, PythonModelSpec) and spec.decoupled}
    doors = {}
    for ensemble in ensembles:
        decoders = [step.model for step in ensemble.steps if step.model in streaming]
        entry = by_name.get(ensemble.steps[0].model)
        opens_one = isinstance(entry, PythonModelSpec) and not entry.decoupled and steps_used[entry.name] == 1
        if len(decoders) == 1 and opens_one:
            doors[ensemble.steps[0].model] = decoders[0]
    return doors


def with_admission_doors(specs: Iterable[ModelSpec]) -> tuple[ModelSpec, ...]:
    specs = tuple(specs)
    doors = admission_doors(specs)
    return tuple(
        replace(spec, parameters={**spec.parameters, ADMISSION_DECODER_PARAMETER: doors[spec.name]})
        if isinstance(spec, PythonModelSpec) and spec.name in doors
        else spec
        for spec in specs
    )
