"""TensorRT engines for the exported encoders of a model repository: ``<model>/1/model.plan`` beside the
``model.onnx`` it was built from, with its ``engine.json`` sidecar and a parity report against ONNX Runtime.

Each engine is built in a staging folder and installed only when its parity check passes. An engine whose
sidecar says it is what a build would make now (same TensorRT, GPU generation, precision, profile and
ONNX file) is kept, so a container can run this on every start and rebuild only what is stale.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from export.families import FAMILIES
from export.families.base import FeedMaker
from export.parity import ParityReport, check_parity
from export.precision import budget
from export.qdq import QDQ_PRECISIONS
from export.repository import VERSION, Checkpoint, repository_checkpoints
from export.specs import OnnxComponentSpec
from export.tensorrt_engine import BuildSettings, TensorRTRunner, build_engine, current_host
from export.tensorrt_profiles import ShapeRange, engine_profile, sizes_from_manifest
from export.tensorrt_sidecar import (
    ENGINE_FILE,
    SIDECAR_FILE,
    EngineHost,
    EngineSidecar,
    check_precision_supported,
    is_current,
    onnx_sha256,
)
from serving.manifest import MANIFEST_FILE, ONNX_FILE, ComponentManifest
from serving.onnx_runner import OnnxRunner

# The families' default names; a repository's named checkpoints add theirs (``encoders``).
_SPECS: tuple[OnnxComponentSpec, ...] = tuple(spec for family in FAMILIES for spec in family.encoder_variants())
PARITY_FEEDS: dict[str, FeedMaker] = {
    name: feeds for family in FAMILIES for name, feeds in family.parity_feeds().items()
}


def _checkpoints(repository: Path | None) -> list[Checkpoint]:
    return repository_checkpoints(repository) if repository is not None else []


def encoder_specs(repository: Path | None = None) -> tuple[OnnxComponentSpec, ...]:
    """Every exported encoder's spec variants: the default names', and those of each checkpoint ``repository``
    holds under its name."""
    named = (spec for c in _checkpoints(repository) for spec in c.family.encoder_variants(c.name))
    return (*_SPECS, *named)


def parity_feeds(repository: Path | None = None) -> dict[str, FeedMaker]:
    """Exported encoder -> the inputs its engine is checked on, for the default names and ``repository``'s."""
    feeds = dict(PARITY_FEEDS)
    for checkpoint in _checkpoints(repository):
        feeds.update(checkpoint.family.parity_feeds(checkpoint.name))
    return feeds


def component_spec(name: str, manifest: ComponentManifest, repository: Path | None = None) -> OnnxComponentSpec:
    """The spec the component was exported from (``llava_vision`` has a fused and a plain variant); a named
    checkpoint's components are found through the repository's tags."""
    outputs = [tensor.name for tensor in manifest.outputs]
    for spec in encoder_specs(repository):
        if spec.name == name and [tensor.name for tensor in spec.outputs] == outputs:
            return spec
    raise ValueError(f"{name}: no exported encoder of that name with outputs {outputs}")


def exported_components(repository: Path) -> list[str]:
    """Encoders with an ONNX export in ``repository``, in spec order (the default names first)."""
    names = dict.fromkeys(spec.name for spec in encoder_specs(repository))
    return [name for name in names if (repository / name / VERSION / ONNX_FILE).is_file()]


@dataclass(frozen=True)
class EngineOutcome:
    component: str
    sidecar: EngineSidecar
    report: ParityReport | None  # None: the installed engine was current and kept

    @property
    def passed(self) -> bool:
        return self.report is None or self.report.passed

    def summary(self) -> str:
        if self.report is None:
            return (
                f"KEPT {self.component}: its engine is current "
                f"(TensorRT {self.sidecar.tensorrt_version}, {self.sidecar.precision}, {self.sidecar.gpu_name})"
            )
        return self.report.summary()


@dataclass(frozen=True)
class EnginePlan:
    """What building one component's engine here and now would use and record."""

    spec: OnnxComponentSpec
    manifest: ComponentManifest
    profile: dict[str, ShapeRange]
    sidecar: EngineSidecar
    source: Path  # the ONNX model TensorRT parses: model.onnx, or the export's QDQ model for int8 and fp8


def source_onnx(version_dir: Path, manifest: ComponentManifest, precision: str) -> Path:
    """The ONNX model an engine at ``precision`` is built from: int8 and fp8 need the QDQ model the export made (its
    manifest names it), since TensorRT quantizes explicitly."""
    if precision not in QDQ_PRECISIONS:
        return version_dir / ONNX_FILE
    made = manifest.qdq.get(precision)
    path = version_dir / str(made["file"]) if made else None
    if path is None or not path.is_file():
        raise ValueError(
            f"{manifest.name}: this export has no {precision} QDQ model to build a {precision} engine from; export the "
            f"checkpoint with `vlm-export model --runtime tensorrt --precision {precision}`"
        )
    return path


def plan_engine(name: str, repository: Path, settings: BuildSettings, host: EngineHost) -> EnginePlan:
    version_dir = repository / name / VERSION
    manifest = ComponentManifest.read(version_dir)
    spec = component_spec(name, manifest, repository)
    check_precision_supported(name, settings.precision, host)
    source = source_onnx(version_dir, manifest, settings.precision)
    profile = engine_profile(spec, sizes_from_manifest(spec, manifest))
    sidecar = EngineSidecar(
        component=name,
        tensorrt_version=host.tensorrt_version,
        gpu_name=host.gpu_name,
        compute_capability=host.compute_capability,
        precision=settings.precision,
        workspace_bytes=settings.workspace_bytes,
        profiles={input_name: shapes.as_dict() for input_name, shapes in profile.items()},
        source_onnx_sha256=onnx_sha256(source),
    )
    return EnginePlan(spec, manifest, profile, sidecar, source)


def installed_engine_is_current(version_dir: Path, planned: EngineSidecar) -> bool:
    if not (version_dir / ENGINE_FILE).is_file():
        return False
    try:
        return is_current(EngineSidecar.read(version_dir), planned)
    except (RuntimeError, ValueError, TypeError):  # no, old or damaged sidecar: rebuild
        return False


def build_component_engine(
    name: str, repository: Path, settings: BuildSettings, host: EngineHost, force: bool = False
) -> EngineOutcome:
    version_dir = repository / name / VERSION
    plan = plan_engine(name, repository, settings, host)
    if not force and installed_engine_is_current(version_dir, plan.sidecar):
        return EngineOutcome(name, EngineSidecar.read(version_dir), None)
    feeds = parity_feeds(repository)[name](repository, plan.manifest, plan.spec.parity_batch_sizes)
    # Staged beside its destination, so installing is an atomic rename on the same filesystem.
    with tempfile.TemporaryDirectory(prefix=".engine-", dir=version_dir) as scratch:
        staging = Path(scratch)
        build_engine(plan.source, plan.profile, settings, staging)
        plan.sidecar.write(staging)
        with OnnxRunner(version_dir / ONNX_FILE) as reference, TensorRTRunner(staging) as candidate:
            report = check_parity(
                name,
                ("onnxruntime", reference.run),
                (f"tensorrt-{settings.precision}", candidate.run),
                feeds,
                budget(plan.spec, settings.precision),  # against float32, as the export's parity
            )
        if report.passed:
            for item in (ENGINE_FILE, SIDECAR_FILE):  # the sidecar last: it vouches for the engine beside it
                (staging / item).replace(version_dir / item)
    return EngineOutcome(name, plan.sidecar, report)


def build_engines(
    repository: Path,
    components: list[str] | None = None,
    settings: BuildSettings | None = None,
    force: bool = False,
) -> list[EngineOutcome]:
    """Build (or keep) an engine for each named component, or for every exported encoder."""
    settings = settings or BuildSettings()
    names = components or exported_components(repository)
    missing = [name for name in names if not (repository / name / VERSION / MANIFEST_FILE).is_file()]
    if missing:
        raise ValueError(f"not exported to ONNX in this repository: {', '.join(missing)} (run vlm-export model)")
    host = current_host()
    return [build_component_engine(name, repository, settings, host, force) for name in names]
