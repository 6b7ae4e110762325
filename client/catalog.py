"""The served models by name, as the model repository's own configs tell them.

``vlm-export model --name NAME`` prefixes every Triton model of one checkpoint with its name (the default name is
the family's: ``clip``, ``llava``, ``siglip``) and tags each ensemble a client calls with config parameters:

- ``vlm_model``: the name, what ``/v1/models`` lists and a request's ``model`` field names;
- ``vlm_family``: the family that exported it (``clip``, ``llava``, ``siglip``, ...);
- ``vlm_kind``: what the name serves: ``embedding`` (a dual encoder: image and text embeddings, zero-shot
  classification and ranking) or ``chat`` (a VLM);
- ``vlm_task``: what this ensemble does for it: ``image_embed``, ``text_embed``, ``rank`` or ``chat``;
- ``vlm_text_model`` (on a chat ensemble): the model that text-only turns and cancellations go to (the decoder);
- ``vlm_probe`` (on one ensemble per name): the request that shows its python models alive (serving/probe.py).

Each exported encoder's config also records the precision its ONNX model was exported at (``vlm_precision``); a
model's precisions are those of the encoders its ensembles run.

This module reads those tags (from config files, or from a server's model configs, which every client may read) and
turns a name into the Triton models a client calls. It imports nothing heavy: the client, the gateway and serving
share it, and the export writes what it reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, cast, get_args

from client.models import ModelNames

MODEL_PARAMETER = "vlm_model"
FAMILY_PARAMETER = "vlm_family"
KIND_PARAMETER = "vlm_kind"
TASK_PARAMETER = "vlm_task"
TEXT_MODEL_PARAMETER = "vlm_text_model"
PROBE_PARAMETER = "vlm_probe"
PRECISION_PARAMETER = "vlm_precision"  # on each exported encoder: the precision its ONNX model was exported at

Kind = Literal["embedding", "chat"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Task = Literal["image_embed", "text_embed", "rank", "chat"]
TASKS: tuple[Task, ...] = get_args(Task)
# The request that shows a model's python models alive: ``rank`` (an image and a text through a dual encoder's rank
# ensemble) or ``chat`` (one generated token about an image through a VLM's ensemble).
ProbeTask = Literal["rank", "chat"]
PROBE_TASKS: tuple[ProbeTask, ...] = get_args(ProbeTask)
KIND_OF_TASK: dict[Task, Kind] = {
    "image_embed": "embedding",
    "text_embed": "embedding",
    "rank": "embedding",
    "chat": "chat",
}
# What each kind answers, in words for people (error messages, the playground).
KIND_WORDS: dict[Kind, str] = {"embedding": "an embedding model", "chat": "a chat model"}

# A Triton model name is a folder name, and the name is also every model's prefix: letters, digits, '_', '-' and
# '.', starting with a letter or digit, short enough that the longest suffix (_text_embed) still fits comfortably.
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class CatalogError(ValueError):
    """The tags of a repository contradict each other (one name, two families), or a name is not valid."""


def check_model_name(name: str) -> str:
    """``name`` if it may name a checkpoint's models; ``CatalogError`` saying why not."""
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise CatalogError(
            f"{name!r} is not a valid model name: use 1 to {MAX_NAME_LENGTH} letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (it prefixes the checkpoint's Triton models, which are folder names)"
        )
    if ".." in name:
        raise CatalogError(f"{name!r} is not a valid model name: it may not hold '..'")
    return name


@dataclass(frozen=True)
class ServedModel:
    """One exported checkpoint, by its name: its family, kind and the Triton model behind each of its tasks."""

    name: str
    family: str
    kind: Kind
    tasks: tuple[tuple[Task, str], ...]  # (task, the ensemble that does it), in task order
    text_model: str | None = None  # chat: where text-only turns and cancellations go
    probe: tuple[str, ProbeTask] | None = None  # (the ensemble, the probe's task)
    # (exported encoder, its precision) for the encoders its ensembles run, in name order; () where none is exported
    # (vLLM encodes the images) or the configs were not read with their steps
    precisions: tuple[tuple[str, str], ...] = ()
    # The inputs its chat ensemble declares (optional request fields such as min_pixels included), where the configs
    # were read from a server; () otherwise
    inputs: tuple[str, ...] = ()

    @property
    def precision(self) -> str | None:
        """Its encoders' one precision (``fp32``, ``int8``, ...), ``mixed`` when they differ, None without any."""
        held = {precision for _, precision in self.precisions}
        return None if not held else held.pop() if len(held) == 1 else "mixed"

    @property
    def triton_models(self) -> dict[Task, str]:
        return dict(self.tasks)

    @property
    def entry_models(self) -> tuple[str, ...]:
        """The Triton models a client calls for it (Triton loads each ensemble's steps with it)."""
        names = [model for _, model in self.tasks]
        if self.text_model is not None:
            names.append(self.text_model)
        return tuple(dict.fromkeys(names))

    def model_names(self, base: ModelNames | None = None) -> ModelNames:
        """``base`` (default: the default names) with this model's tasks in their places."""
        models = self.triton_models
        names = base or ModelNames()
        if self.kind == "chat":
            return replace(names, llava=models.get("chat", names.llava), decoder=self.text_model or names.decoder)
        return replace(
            names,
            image_embed=models.get("image_embed", names.image_embed),
            text_embed=models.get("text_embed", names.text_embed),
            rank=models.get("rank", names.rank),
        )


@dataclass(frozen=True)
class _Tagged:
    """One tagged ensemble's reading."""

    ensemble: str
    name: str
    family: str
    task: Task
    text_model: str | None
    probe: str | None


def _legacy_task(ensemble: str, family: str) -> Task | None:
    """Configs tagged before names existed carry only ``vlm_family`` (and ``vlm_probe``), on the default names."""
    if ensemble == family:
        return "chat"
    return next((task for task in TASKS if task != "chat" and ensemble == f"{family}_{task}"), None)


def _read(ensemble: str, parameters: Mapping[str, str]) -> _Tagged | None:
    family = parameters.get(FAMILY_PARAMETER)
    if not family:
        return None
    task: Task | None
    if MODEL_PARAMETER in parameters:
        name = parameters[MODEL_PARAMETER]
        task = next((t for t in TASKS if t == parameters.get(TASK_PARAMETER)), None)
        if task is None:
            raise CatalogError(
                f"{ensemble}: {TASK_PARAMETER} is {parameters.get(TASK_PARAMETER)!r}, not one of {', '.join(TASKS)}"
            )
        text_model = parameters.get(TEXT_MODEL_PARAMETER)
        kind = parameters.get(KIND_PARAMETER, KIND_OF_TASK[task])
        if kind != KIND_OF_TASK[task]:
            raise CatalogError(f"{ensemble}: {KIND_PARAMETER} {kind!r} does not fit its task {task!r}")
    else:
        task = _legacy_task(ensemble, family)
        if task is None:
            return None
        name, text_model = family, (f"{family}_decoder" if task == "chat" else None)
    return _Tagged(ensemble, name, family, task, text_model, parameters.get(PROBE_PARAMETER))


def collect(configs: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, ServedModel]:
    """Name -> its served model, in name order, from (model, its config parameters) pairs; models without tags are
    not client-facing and are left out. ``CatalogError`` when one name holds two families or kinds."""
    found: dict[str, list[_Tagged]] = {}
    for ensemble, parameters in configs:
        tagged = _read(ensemble, parameters)
        if tagged is not None:
            found.setdefault(tagged.name, []).append(tagged)
    models: dict[str, ServedModel] = {}
    for name in sorted(found):
        entries = sorted(found[name], key=lambda t: TASKS.index(t.task))
        families = sorted({t.family for t in entries})
        kinds = sorted({KIND_OF_TASK[t.task] for t in entries})
        kind: Kind = KIND_OF_TASK[entries[0].task]
        if len(families) > 1 or len(kinds) > 1:
            held = ", ".join(f"{t.ensemble} ({t.family})" for t in entries)
            raise CatalogError(f"the name {name!r} is given to models of more than one checkpoint: {held}")
        for t in entries:
            if t.probe is not None and t.probe not in PROBE_TASKS:
                raise CatalogError(
                    f"{t.ensemble}: {PROBE_PARAMETER} is {t.probe!r}, not one of {', '.join(PROBE_TASKS)}"
                )
        probes = [(t.ensemble, cast(ProbeTask, t.probe)) for t in entries if t.probe]
        models[name] = ServedModel(
            name=name,
            family=families[0],
            kind=kind,
            tasks=tuple((t.task, t.ensemble) for t in entries),
            text_model=next((t.text_model for t in entries if t.text_model), None),
            probe=probes[0] if probes else None,
        )
    return models


def string_parameters(parameters: Mapping[str, object]) -> dict[str, str]:
    """A model config's parameters as plain strings, from the protobuf map (``.string_value``) or from Triton's
    JSON (``{"string_value": ...}``)."""
    values: dict[str, str] = {}
    for key, value in parameters.items():
        if isinstance(value, Mapping):
            values[key] = str(value.get("string_value", ""))
        else:
            values[key] = str(getattr(value, "string_value", value))
    return values


def stat_names(statistics: Mapping[str, object]) -> list[str]:
    """The models a server's statistics (``/v2/models/stats`` with no name: every loaded model) list, each once."""
    entries = statistics.get("model_stats", [])
    listed = entries if isinstance(entries, list) else []
    names = [str(entry.get("name", "")) for entry in listed if isinstance(entry, Mapping)]
    return list(dict.fromkeys(name for name in names if name))


def _json_parameters(config: Mapping[str, object]) -> dict[str, str]:
    parameters = config.get("parameters", {})
    return string_parameters(parameters if isinstance(parameters, Mapping) else {})


def _json_steps(config: Mapping[str, object]) -> list[str]:
    """An ensemble config's steps' models (JSON, as Triton answers: ``ensemble_scheduling.step[].model_name``)."""
    scheduling = config.get("ensemble_scheduling", {})
    steps = scheduling.get("step", []) if isinstance(scheduling, Mapping) else []
    return (
        [str(step.get("model_name", "")) for step in steps if isinstance(step, Mapping)]
        if isinstance(steps, list)
        else []
    )


def from_configs(configs: Mapping[str, Mapping[str, object]]) -> dict[str, ServedModel]:
    """Name -> served model from a server's model configs as JSON (model -> config), as ``collect`` reads files, with
    the precisions its ensembles' encoders record."""
    parameters = {model: _json_parameters(config) for model, config in configs.items()}
    models = collect(parameters.items())
    for name, served in models.items():
        steps = {
            step for ensemble in served.entry_models if ensemble in configs for step in _json_steps(configs[ensemble])
        }
        precisions = tuple(
            (step, parameters[step][PRECISION_PARAMETER])
            for step in sorted(steps)
            if PRECISION_PARAMETER in parameters.get(step, {})
        )
        chat = served.triton_models.get("chat")
        inputs = _json_inputs(configs[chat]) if chat is not None and chat in configs else ()
        models[name] = replace(served, precisions=precisions, inputs=inputs)
    return models


def _json_inputs(config: Mapping[str, object]) -> tuple[str, ...]:
    """A model config's input names (JSON, as Triton answers: ``input[].name``)."""
    inputs = config.get("input", [])
    listed = inputs if isinstance(inputs, list) else []
    return tuple(str(entry.get("name", "")) for entry in listed if isinstance(entry, Mapping))
