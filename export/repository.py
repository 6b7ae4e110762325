"""Write the generated part of a model repository: configs and the python models' thin adapters; and tell which
checkpoints, by name, a repository holds, so that regenerating it keeps every one and a new export's name does not
take another's models.

Artifacts (ONNX files, tokenizer and processor files) are written by the family exports into the same
``<model>/1/`` folders; they are not part of what this module generates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from export.admission import with_admission
from export.families import FAMILIES, family_named
from export.families.base import MODEL_VARIANTS, ExportOptions, Family
from export.specs import EnsembleSpec, ModelSpec, OnnxComponentSpec, PythonModelSpec
from export.triton_config import (
    DEFAULT_TARGET,
    GPU_TARGETS,
    ONNX_ENCODER_ENTRY_POINT,
    TARGETS,
    ensemble_config,
    onnx_component_config,
    parse_pbtxt,
    python_model_config,
    to_pbtxt,
)
from serving.manifest import DEFAULT_PRECISION, MANIFEST_FILE, recorded_precision
from serving.served import CONFIG_FILE, members, served_models


# The checked-in repository: the default models of the families the demo and the test server serve.
def served_specs(family: Family, options: ExportOptions) -> tuple[ModelSpec, ...]:
    """What the repository holds for one checkpoint: its family's models, with its admission step."""
    return with_admission(family.models(options))


ALL_MODELS: tuple[ModelSpec, ...] = tuple(
    spec for family in FAMILIES if family.checked_in for spec in served_specs(family, ExportOptions())
)
VERSION = "1"


class NameConflictError(ValueError):
    """A checkpoint's name would take models that belong to another checkpoint of the repository."""


@dataclass(frozen=True)
class Checkpoint:
    """One exported checkpoint of a repository: its family and the options (name, variant) it was exported with."""

    family: Family
    options: ExportOptions

    @property
    def name(self) -> str:
        return self.options.named(self.family.name)

    def models(self) -> tuple[ModelSpec, ...]:
        return served_specs(self.family, self.options)


def _steps(root: Path, ensemble: str) -> list[str] | None:
    path = root / ensemble / CONFIG_FILE
    if not path.is_file():
        return None
    return [step.model_name for step in parse_pbtxt(path.read_text()).ensemble_scheduling.step]


def _variant(root: Path, family: Family, name: str) -> ExportOptions:
    """The options whose ensembles run the steps the repository's ensembles of ``name`` run (a VLM's fused
    projector leaves one step out); the plain variant when none matches."""
    for variant in MODEL_VARIANTS:
        options = replace(variant, name=None if name == family.name else name)
        ensembles = [spec for spec in served_specs(family, options) if isinstance(spec, EnsembleSpec)]
        if all(_steps(root, spec.name) == [step.model for step in spec.steps] for spec in ensembles):
            return options
    return ExportOptions(name=None if name == family.name else name)


def checkpoints_in(root: Path) -> list[Checkpoint]:
    """Every checkpoint the repository's tagged configs name, in name order (a family this release does not know
    is left out)."""
    known = {family.name for family in FAMILIES}
    found = []
    for name, model in served_models(root).items():
        if model.family in known:
            family = family_named(model.family)
            found.append(Checkpoint(family, _variant(root, family, name)))
    return found


def repository_checkpoints(root: Path) -> list[Checkpoint]:
    """What regenerating ``root`` writes: every checkpoint it holds, and the checked-in families' default ones it
    does not (the repository is laid out for them even before they are exported)."""
    held = checkpoints_in(root) if root.is_dir() else []
    names = {checkpoint.name for checkpoint in held}
    defaults = [Checkpoint(f, ExportOptions()) for f in FAMILIES if f.checked_in and f.name not in names]
    return held + defaults


def repository_specs(root: Path) -> tuple[ModelSpec, ...]:
    return tuple(spec for checkpoint in repository_checkpoints(root) for spec in checkpoint.models())


def check_name(root: Path, family: Family, options: ExportOptions) -> None:
    """Refuses, before any export work, a name whose models would replace another checkpoint's: one of another
    family under the same name, or one whose models (ensembles or their steps) share a name with this one's."""
    name = options.named(family.name)
    if not root.is_dir():
        return
    served = served_models(root)
    held = served.get(name)
    if held is not None and held.family != family.name:
        raise NameConflictError(
            f"the repository {root} already serves a {held.family} model named {name!r}; export this "
            f"{family.name} checkpoint under another --name"
        )
    variants = [replace(variant, name=options.name) for variant in MODEL_VARIANTS]
    ours = {spec.name for variant in variants for spec in served_specs(family, variant)}
    for other, theirs in members(root).items():
        taken = sorted(ours & theirs)
        if other != name and taken:
            raise NameConflictError(
                f"--name {name!r}: its Triton models {', '.join(taken)} would replace those of the "
                f"{served[other].family} model {other!r} in {root}; pick another name"
            )


def adapter_source(entry_point: str) -> str:
    module, _, cls = entry_point.partition(":")
    return (
        '"""Triton python-backend adapter, generated by `vlm-export repository`."""\n'
        "\n"
        f"from {module} import {cls} as TritonPythonModel\n"
        "\n"
        '__all__ = ["TritonPythonModel"]\n'
    )


def generated_files(
    specs: Iterable[ModelSpec] = ALL_MODELS, precisions: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Relative path -> content for every generated file of the repository; each encoder's configs record its
    exported precision (``precisions``, by model name; fp32 for one not named)."""
    files: dict[str, str] = {}
    for spec in with_admission(specs):
        version_dir = f"{spec.name}/{VERSION}"
        if isinstance(spec, OnnxComponentSpec):
            precision = (precisions or {}).get(spec.name, DEFAULT_PRECISION)
            files[f"{spec.name}/config.pbtxt"] = to_pbtxt(onnx_component_config(spec, DEFAULT_TARGET, precision))
            for target in TARGETS:
                if target != DEFAULT_TARGET:
                    config = onnx_component_config(spec, target, precision)
                    files[f"{spec.name}/configs/{target}.pbtxt"] = to_pbtxt(config)
            files[f"{version_dir}/model.py"] = adapter_source(ONNX_ENCODER_ENTRY_POINT)
        elif isinstance(spec, PythonModelSpec):
            files[f"{spec.name}/config.pbtxt"] = to_pbtxt(python_model_config(spec))
            for target in GPU_TARGETS if spec.onnx_on_gpu else ():
                files[f"{spec.name}/configs/{target}.pbtxt"] = to_pbtxt(python_model_config(spec, target))
            files[f"{version_dir}/model.py"] = adapter_source(spec.entry_point)
        elif isinstance(spec, EnsembleSpec):
            files[f"{spec.name}/config.pbtxt"] = to_pbtxt(ensemble_config(spec))
            files[f"{version_dir}/.gitkeep"] = ""  # Triton needs the version folder of an ensemble
        else:
            raise TypeError(f"no config writer for {type(spec).__name__}")
    return files


def exported_precisions(root: Path, specs: Iterable[ModelSpec]) -> dict[str, str]:
    """Exported encoder -> the precision its ``component.json`` under ``root`` records."""
    folders = {spec.name: root / spec.name / VERSION for spec in specs if isinstance(spec, OnnxComponentSpec)}
    return {name: recorded_precision(folder) for name, folder in folders.items() if (folder / MANIFEST_FILE).is_file()}


def write_repository(root: Path, specs: Iterable[ModelSpec] = ALL_MODELS, precision: str | None = None) -> list[Path]:
    """``precision``: what the export writing these configs made; None (``vlm-export repository``): what each
    exported encoder's ``component.json`` records, so regenerating never misstates an int8 export."""
    specs = tuple(specs)
    precisions = {spec.name: precision for spec in specs} if precision else exported_precisions(root, specs)
    written = []
    for relative, content in generated_files(specs, precisions).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
        written.append(path)
    return written


def stale_files(root: Path, specs: Iterable[ModelSpec] | None = None) -> list[str]:
    """Generated files that are missing under ``root`` or differ from a fresh generation (by default, of every
    checkpoint the repository holds: ``repository_specs``)."""
    specs = tuple(repository_specs(root) if specs is None else specs)
    return [
        relative
        for relative, content in generated_files(specs, exported_precisions(root, specs)).items()
        if not (root / relative).is_file() or (root / relative).read_text() != content
    ]
