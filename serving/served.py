"""What a model repository serves, read from its own configs: ``vlm-serve --family`` and ``vlm-probe`` need no
family list of their own (serving may not import ``export``, which knows the families).

The export tags every ensemble a client calls with its family (the config parameter ``vlm_family``), and the
family's probe model with the request that shows its python models alive (``vlm_probe``: ``rank``, an image and a
text through a dual encoder's rank ensemble, or ``chat``, one generated token about an image through a VLM's
ensemble). Triton loads an ensemble's steps with it, so a family's tagged ensembles are all it takes to serve it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

FAMILY_PARAMETER = "vlm_family"
PROBE_PARAMETER = "vlm_probe"
ProbeTask = Literal["rank", "chat"]
PROBE_TASKS: tuple[ProbeTask, ...] = get_args(ProbeTask)
CONFIG_FILE = "config.pbtxt"


class RepositoryError(ValueError):
    """The repository does not hold what was asked of it (or its configs cannot be read)."""


@dataclass(frozen=True)
class Probe:
    model: str
    task: ProbeTask


@dataclass(frozen=True)
class ServedFamily:
    name: str
    models: tuple[str, ...]  # the ensembles its clients call
    probes: tuple[Probe, ...]  # one per exported checkpoint of the family


def _read_config(path: Path) -> mc.ModelConfig:
    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig(), allow_unknown_field=True)
    except (OSError, text_format.ParseError) as error:
        raise RepositoryError(f"{path}: not a readable Triton model config ({error})") from None


def served_families(repository: Path) -> dict[str, ServedFamily]:
    """Family name -> its models and probes, in name order; {} for a repository whose configs carry no tags."""
    models: dict[str, list[str]] = {}
    probes: dict[str, list[Probe]] = {}
    for path in sorted(Path(repository).glob(f"*/{CONFIG_FILE}")):
        parameters = _read_config(path).parameters
        if FAMILY_PARAMETER not in parameters:
            continue
        model, family = path.parent.name, parameters[FAMILY_PARAMETER].string_value
        models.setdefault(family, []).append(model)
        probes.setdefault(family, [])
        if PROBE_PARAMETER in parameters:
            task = parameters[PROBE_PARAMETER].string_value
            if task not in PROBE_TASKS:
                raise RepositoryError(f"{path}: {PROBE_PARAMETER} is {task!r}, not one of {', '.join(PROBE_TASKS)}")
            probes[family].append(Probe(model, cast(ProbeTask, task)))
    return {name: ServedFamily(name, tuple(models[name]), tuple(probes[name])) for name in sorted(models)}


def select(repository: Path, names: list[str] | tuple[str, ...]) -> list[ServedFamily]:
    """The named families; ``RepositoryError`` naming the ones the repository holds for a name it lacks."""
    if not names:
        return []
    served = served_families(repository)
    unknown = [name for name in names if name not in served]
    if unknown:
        held = ", ".join(served) or "none (configs written before families were tagged: run vlm-export repository)"
        raise RepositoryError(
            f"the repository {repository} holds no family {', '.join(map(repr, unknown))}; it holds: {held}"
        )
    return [served[name] for name in dict.fromkeys(names)]
