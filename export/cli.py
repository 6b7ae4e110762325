"""``vlm-export``: export checkpoints into a Triton model repository, build engines, keep configs in sync."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from export.parity import ParityReport

DEFAULT_REPOSITORY = Path("model_repository")


def _reported(reports: list[ParityReport], repository: Path) -> bool:
    for report in reports:
        print(report.summary())
    if all(report.passed for report in reports):
        return True
    print(f"vlm-export: parity check failed; {repository} was left unchanged", file=sys.stderr)
    return False


def _build_engines(args: argparse.Namespace, components: list[str] | None) -> int:
    from export.tensorrt_engine import BuildSettings, EngineBuildError, TensorRTUnavailableError
    from export.tensorrt_export import build_engines
    from export.tensorrt_sidecar import DEFAULT_PRECISION as DEFAULT_ENGINE_PRECISION
    from export.tensorrt_sidecar import EngineMismatchError

    try:
        precision = args.precision or DEFAULT_ENGINE_PRECISION
        settings = BuildSettings(precision, args.workspace_mib << 20, args.timing_cache)
        outcomes = build_engines(args.repository, components, settings, force=args.force)
    except (TensorRTUnavailableError, EngineBuildError, EngineMismatchError, ValueError) as error:
        print(f"vlm-export: {error}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(outcome.summary())
    if not all(outcome.passed for outcome in outcomes):
        print("vlm-export: parity check failed; those engines were not installed", file=sys.stderr)
        return 1
    return 0


def _engine(args: argparse.Namespace) -> int:
    return _build_engines(args, args.component)


def _model(args: argparse.Namespace) -> int:
    """Export any supported checkpoint; the ``clip`` / ``llava`` aliases also require that family."""
    from export.families import UnsupportedCheckpointError, family_for_checkpoint
    from export.families.base import ExportOptions
    from export.precision import DEFAULT_PRECISION
    from export.qdq import QDQ_PRECISIONS
    from export.repository import NameConflictError, check_name
    from export.specs import OnnxComponentSpec
    from export.tensorrt_sidecar import PRECISIONS as ENGINE_PRECISIONS

    try:
        choice = family_for_checkpoint(args.checkpoint)
    except UnsupportedCheckpointError as error:
        print(f"vlm-export: {error}", file=sys.stderr)
        return 2
    family = choice.family
    if args.family not in (None, family.name):
        print(
            f"vlm-export {args.family}: {args.checkpoint} is a {family.name} checkpoint ({choice.reason}); "
            "`vlm-export model` picks the family itself",
            file=sys.stderr,
        )
        return 2
    # With --runtime tensorrt the ONNX model stays float32 and --precision is the engines' (default fp16); int8 and
    # fp8 engines are built from a QDQ model the export makes beside it.
    tensorrt = args.runtime == "tensorrt"
    if tensorrt and args.precision not in (None, *ENGINE_PRECISIONS):
        print(
            f"vlm-export {args.command}: --precision {args.precision} is no TensorRT engine precision here "
            f"({', '.join(ENGINE_PRECISIONS)})",
            file=sys.stderr,
        )
        return 2
    print(f"family: {family.name} ({choice.reason})")
    print(f"images: {family.image_encoding}")
    try:
        options = ExportOptions(
            opset=args.opset,
            fuse_projector=args.fuse_projector,
            name=args.name,
            precision=DEFAULT_PRECISION if tensorrt else args.precision or DEFAULT_PRECISION,
            qdq=args.precision if tensorrt and args.precision in QDQ_PRECISIONS else None,
        )
        check_name(args.repository, family, options)
    except (NameConflictError, ValueError) as error:
        print(f"vlm-export {args.command}: {error}", file=sys.stderr)
        return 2
    name = options.named(family.name)
    try:
        reports = family.export(args.checkpoint, args.repository, options)
    except ValueError as error:
        print(f"vlm-export {args.command}: {error}", file=sys.stderr)
        return 2
    if not _reported(reports, args.repository):
        return 1
    print(f"exported {family.name} from {args.checkpoint} into {args.repository} as {name!r}")
    if tensorrt:
        encoders = [spec.name for spec in family.models(options) if isinstance(spec, OnnxComponentSpec)]
        return _build_engines(args, encoders)
    return 0


def _repository(args: argparse.Namespace) -> int:
    from export.repository import repository_checkpoints, repository_specs, stale_files, write_repository
    from serving.served import RepositoryError

    try:
        if args.check:
            stale = stale_files(args.repository)
            if stale:
                print("out of date (run `vlm-export repository`):\n  " + "\n  ".join(stale), file=sys.stderr)
                return 1
            print(f"{args.repository}: generated files are up to date")
            return 0
        names = ", ".join(checkpoint.name for checkpoint in repository_checkpoints(args.repository))
        written = write_repository(args.repository, repository_specs(args.repository))
    except RepositoryError as error:
        print(f"vlm-export repository: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} generated files under {args.repository} ({names})")
    return 0


def _add_engine_options(parser: argparse.ArgumentParser, precision: bool = True) -> None:
    from export.tensorrt_sidecar import DEFAULT_PRECISION, DEFAULT_WORKSPACE_BYTES, PRECISIONS

    if precision:
        parser.add_argument(
            "--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help="TensorRT builder precision"
        )
    parser.add_argument(
        "--workspace-mib", type=int, default=DEFAULT_WORKSPACE_BYTES >> 20, help="TensorRT workspace limit (MiB)"
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        default=Path(".cache/tensorrt/timing.cache"),
        help="TensorRT timing cache, reused across builds",
    )
    parser.add_argument("--force", action="store_true", help="rebuild engines that are current")


def _add_model_options(parser: argparse.ArgumentParser, family: str | None) -> None:
    from export.precision import CPU_PRECISIONS, DEFAULT_PRECISION, REFUSED_ON_CPU
    from export.qdq import QDQ_PRECISIONS
    from export.tensorrt_sidecar import DEFAULT_PRECISION as DEFAULT_ENGINE_PRECISION
    from export.tensorrt_sidecar import PRECISIONS

    parser.add_argument("--checkpoint", type=Path, required=True, help="local Hugging Face checkpoint folder")
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument(
        "--name",
        help="the model's name: it prefixes every Triton model of this checkpoint (NAME, NAME_vision, ...), so "
        "several checkpoints, of one family too, share a repository; clients and the gateway call it by it "
        "(default: the family's name, e.g. clip or llava)",
    )
    parser.add_argument(
        "--fuse-projector", action="store_true", help="VLMs: one ONNX graph for the vision tower and projector"
    )
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument(
        "--runtime", choices=("onnx", "tensorrt"), default="onnx", help="tensorrt: also build engines (GPU host)"
    )
    parser.add_argument(
        "--precision",
        choices=sorted({*CPU_PRECISIONS, *REFUSED_ON_CPU, *PRECISIONS}),
        help=f"the encoders' precision: {', '.join(CPU_PRECISIONS)} on ONNX Runtime (default {DEFAULT_PRECISION}); "
        f"with --runtime tensorrt the engines' ({', '.join(PRECISIONS)}; default {DEFAULT_ENGINE_PRECISION}), "
        f"{' and '.join(QDQ_PRECISIONS)} built from a QDQ model the export calibrates and checks on CPU",
    )
    _add_engine_options(parser, precision=False)
    parser.set_defaults(run=_model, family=family)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser(
        "model", help="export any supported checkpoint (its family read from config.json), with parity checks"
    )
    _add_model_options(model, family=None)
    from export.families import FAMILIES

    for family in FAMILIES:  # `vlm-export clip`, `vlm-export llava`, ...: aliases that refuse another family
        alias = commands.add_parser(family.name, help=f"`model` for a {family.name} checkpoint (refuses any other)")
        _add_model_options(alias, family=family.name)

    engine = commands.add_parser(
        "engine", help="build TensorRT engines for the exported encoders, with parity checks (GPU host)"
    )
    engine.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    engine.add_argument(
        "--component",
        action="append",
        help="an exported encoder, e.g. clip_vision or NAME_vision (repeatable; default: all)",
    )
    _add_engine_options(engine)
    engine.set_defaults(run=_engine)

    repository = commands.add_parser("repository", help="regenerate the checked-in configs and adapters")
    repository.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    repository.add_argument("--check", action="store_true", help="exit 1 when a generated file differs")
    repository.set_defaults(run=_repository)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
