"""What a model repository serves, read from its own configs: ``vlm-serve --family/--model`` and ``vlm-probe`` need no
family or model list of their own (serving may not import ``export``, which knows the families).

The export names every checkpoint (``vlm-export model --name``, default the family's name) and tags each ensemble a
client calls with that name, its family, kind and task (client/catalog.py), and one ensemble per checkpoint with the
request that shows its python models alive (``vlm_probe``: ``rank``, an image and a text through a dual encoder's
rank ensemble, or ``chat``, one generated token about an image through a VLM's ensemble). Triton loads an
ensemble's steps with it, so a checkpoint's tagged ensembles are all it takes to serve it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from client.catalog import (
    FAMILY_PARAMETER,
    PRECISION_PARAMETER,
    PROBE_PARAMETER,
    PROBE_TASKS,
    CatalogError,
    ProbeTask,
    ServedModel,
    collect,
    string_parameters,
)
from serving.manifest import MANIFEST_FILE

__all__ = [
    "CONFIG_FILE",
    "FAMILY_PARAMETER",
    "PRECISION_PARAMETER",
    "PROBE_PARAMETER",
    "PROBE_TASKS",
    "Probe",
    "ProbeTask",
    "RepositoryError",
    "ServedFamily",
    "members",
    "model_configs",
    "select",
    "select_models",
    "served_families",
    "served_models",
    "served_precisions",
]

CONFIG_FILE = "config.pbtxt"
T = TypeVar("T")
_NO_TAGS = "none (configs written before models were tagged: run vlm-export repository)"


class RepositoryError(ValueError):
    """The repository does not hold what was asked of it (or its configs cannot be read)."""


@dataclass(frozen=True)
class Probe:
    model: str
    task: ProbeTask


@dataclass(frozen=True)
class ServedFamily:
    name: str
    models: tuple[str, ...]  # the ensembles its clients call, of every checkpoint of the family
    probes: tuple[Probe, ...]  # one per exported checkpoint of the family
    names: tuple[str, ...] = ()  # its checkpoints' names


def _read_config(path: Path) -> mc.ModelConfig:
    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig(), allow_unknown_field=True)
    except (OSError, text_format.ParseError) as error:
        raise RepositoryError(f"{path}: not a readable Triton model config ({error})") from None


def _configs(repository: Path) -> dict[str, mc.ModelConfig]:
    return {path.parent.name: _read_config(path) for path in sorted(Path(repository).glob(f"*/{CONFIG_FILE}"))}


def _served(repository: Path, configs: dict[str, mc.ModelConfig]) -> dict[str, ServedModel]:
    try:
        return collect((model, string_parameters(config.parameters)) for model, config in configs.items())
    except CatalogError as error:
        raise RepositoryError(f"{repository}: {error}") from None


def model_configs(repository: Path) -> dict[str, mc.ModelConfig]:
    """Model -> its config (``config.pbtxt``), for every model folder of the repository."""
    return _configs(repository)


def served_models(repository: Path) -> dict[str, ServedModel]:
    """Name -> the checkpoint served under it, in name order; {} for a repository whose configs carry no tags."""
    return _served(repository, _configs(repository))


def members(repository: Path) -> dict[str, frozenset[str]]:
    """Name -> every Triton model that belongs to it: its tagged ensembles and the steps they run."""
    configs = _configs(repository)
    owned: dict[str, frozenset[str]] = {}
    for name, model in _served(repository, configs).items():
        folders = set(model.entry_models)
        for ensemble in list(folders):
            if ensemble in configs:
                folders |= {step.model_name for step in configs[ensemble].ensemble_scheduling.step}
        owned[name] = frozenset(folders)
    return owned


def _probe(model: ServedModel) -> tuple[Probe, ...]:
    return () if model.probe is None else (Probe(*model.probe),)


def served_families(repository: Path) -> dict[str, ServedFamily]:
    """Family name -> its models and probes, in name order; {} for a repository whose configs carry no tags."""
    grouped: dict[str, list[ServedModel]] = {}
    for model in served_models(repository).values():
        grouped.setdefault(model.family, []).append(model)
    return {
        family: ServedFamily(
            family,
            tuple(sorted(ensemble for model in models for _, ensemble in model.tasks)),
            tuple(probe for model in models for probe in _probe(model)),
            tuple(model.name for model in models),
        )
        for family, models in sorted(grouped.items())
    }


def _pick(repository: Path, what: str, held: dict[str, T], names: list[str] | tuple[str, ...]) -> list[T]:
    unknown = [name for name in names if name not in held]
    if unknown:
        raise RepositoryError(
            f"the repository {repository} holds no {what} {', '.join(map(repr, unknown))}; "
            f"it holds: {', '.join(held) or _NO_TAGS}"
        )
    return [held[name] for name in dict.fromkeys(names)]


def select(repository: Path, names: list[str] | tuple[str, ...]) -> list[ServedFamily]:
    """The named families; ``RepositoryError`` naming the ones the repository holds for a name it lacks."""
    return _pick(repository, "family", served_families(repository), names) if names else []


def select_models(repository: Path, names: list[str] | tuple[str, ...]) -> list[ServedModel]:
    """The checkpoints of these names; ``RepositoryError`` naming the ones the repository holds for a name it
    lacks."""
    return _pick(repository, "model", served_models(repository), names) if names else []


def served_precisions(repository: Path, target: str) -> dict[str, str]:
    """Exported encoder -> the precision its config records for ``target`` (the config Triton's
    ``--model-config-name`` picks: ``configs/<target>.pbtxt``, else ``config.pbtxt``), in name order. Encoders
    with a config but no export (no ``component.json`` in a version folder) are left out."""
    precisions = {}
    for default in sorted(Path(repository).glob(f"*/{CONFIG_FILE}")):
        if not any(default.parent.glob(f"*/{MANIFEST_FILE}")):
            continue
        chosen = default.parent / "configs" / f"{target}.pbtxt"
        parameters = _read_config(chosen if chosen.is_file() else default).parameters
        if PRECISION_PARAMETER in parameters:
            precisions[default.parent.name] = parameters[PRECISION_PARAMETER].string_value
    return precisions
