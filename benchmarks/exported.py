"""What a benchmark reads of the model it measures, from the configs the export wrote (the repository's files, or a
running server's model configs): the served model behind ``--model`` (client/catalog.py's tags), the Triton models a
task needs, and a dual encoder's layout: which of its models does each step, how its text is padded, its pixels
laid out and its scores made. The family decided those when it exported the model; the benchmark reads them back
rather than deciding again, so it never asks which family it measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.catalog import KIND_OF_TASK, KIND_WORDS, CatalogError, ServedModel, Task, collect, stat_names
from client.catalog import string_parameters as _strings


@dataclass(frozen=True)
class ConfigReading:
    """One Triton model's config as far as the benchmark reads it: its parameters and, for an ensemble, its steps'
    models in order."""

    parameters: Mapping[str, str]
    steps: tuple[str, ...] = ()


Readings = Mapping[str, ConfigReading]


def repository_readings(repository: Path) -> dict[str, ConfigReading]:
    from serving.served import model_configs

    return {
        model: ConfigReading(
            _strings(config.parameters), tuple(step.model_name for step in config.ensemble_scheduling.step)
        )
        for model, config in model_configs(repository).items()
    }


def _json_reading(config: Mapping[str, Any]) -> ConfigReading:
    parameters = config.get("parameters", {})
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    return ConfigReading(
        _strings(parameters if isinstance(parameters, Mapping) else {}), tuple(str(s["model_name"]) for s in steps)
    )


def server_readings(url: str, protocol: str) -> dict[str, ConfigReading]:
    """Every loaded model's reading from the server at ``url`` (any client may read model configs)."""
    if protocol == "grpc":
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(url) as client:
            names = stat_names(client.get_inference_statistics("", as_json=True))
            return {n: _json_reading(client.get_model_config(n, as_json=True)["config"]) for n in names}
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(url)
    try:
        names = stat_names(http.get_inference_statistics(""))
        return {n: _json_reading(http.get_model_config(n)) for n in names}
    finally:
        http.close()


def served_model(readings: Readings, name: str, task: Task, where: str) -> ServedModel:
    """The model served as ``name`` that can do ``task``; a ``ValueError`` naming ``--model`` and what ``where``
    (the repository, the server) serves otherwise."""
    try:
        models = collect((model, reading.parameters) for model, reading in readings.items())
    except CatalogError as error:
        raise ValueError(f"{where}: {error}") from None
    if name not in models:
        held = ", ".join(f"{n} ({KIND_WORDS[m.kind]})" for n, m in models.items()) or "none"
        raise ValueError(f"--model: {where} serves no model named {name!r}; it serves: {held}")
    model = models[name]
    if task not in model.triton_models:
        raise ValueError(
            f"--model: {name!r} is {KIND_WORDS[model.kind]} ({model.family}), and this benchmark ({task}) "
            f"needs {KIND_WORDS[KIND_OF_TASK[task]]}"
        )
    return model


def task_models(model: ServedModel, task: Task) -> tuple[str, ...]:
    """The Triton models to load for ``task`` (the ensemble loads its steps; a chat's text model takes text-only
    turns)."""
    ensemble = model.triton_models[task]
    if KIND_OF_TASK[task] == "chat" and model.text_model is not None:
        return (ensemble, model.text_model)
    return (ensemble,)


@dataclass(frozen=True)
class DualEncoderLayout:
    """A served dual encoder's models and traits, read from its ensembles: the image ensemble runs the preprocess
    then the vision tower, the text ensemble the tokenizer then the text tower, and the rank ensemble ends with the
    scoring step."""

    preprocess: str
    vision: str
    tokenize: str
    text: str
    similarity: str
    pixel_layout: str  # the preprocess step's (``image``: [3, S, S] pixels; ``patches``: NaFlex)
    padding: str  # the tokenizer's: ``longest`` or ``max_length``, as the checkpoint's processor pads
    scoring: str  # ``softmax`` over the texts or ``sigmoid`` per pair (serving/similarity.py)

    @classmethod
    def read(cls, model: ServedModel, readings: Readings) -> DualEncoderLayout:
        from serving.admission import ADMISSION_PARAMETER
        from serving.triton_models.image_preprocess import DEFAULT_PIXEL_LAYOUT, PIXEL_LAYOUT_PARAMETER
        from serving.triton_models.similarity import DEFAULT_SCORING, SCORING_PARAMETER
        from serving.triton_models.text_tokenize import DEFAULT_PADDING, PADDING_PARAMETER

        tasks = model.triton_models
        missing = [task for task in ("image_embed", "text_embed", "rank") if task not in tasks]
        if missing:
            raise ValueError(f"--model: {model.name!r} serves no {', '.join(missing)} ensemble to read its layout from")

        def steps(task: Task, count: int) -> tuple[str, ...]:
            """The ensemble's working steps, after its admission step (serving/admission.py)."""
            reading = readings.get(tasks[task])
            found = () if reading is None else tuple(step for step in reading.steps if not admits(step))
            if len(found) < count:
                raise ValueError(f"{tasks[task]}: not an ensemble of at least {count} steps; cannot read its layout")
            return found

        def admits(step: str) -> bool:
            reading = readings.get(step)
            return reading is not None and ADMISSION_PARAMETER in reading.parameters

        preprocess, vision = steps("image_embed", 2)[:2]
        tokenize, text = steps("text_embed", 2)[:2]
        similarity = steps("rank", 1)[-1]

        def parameter(model_name: str, key: str, default: str) -> str:
            reading = readings.get(model_name)
            return default if reading is None else reading.parameters.get(key, default)

        return cls(
            preprocess,
            vision,
            tokenize,
            text,
            similarity,
            parameter(preprocess, PIXEL_LAYOUT_PARAMETER, DEFAULT_PIXEL_LAYOUT),
            parameter(tokenize, PADDING_PARAMETER, DEFAULT_PADDING),
            parameter(similarity, SCORING_PARAMETER, DEFAULT_SCORING),
        )
