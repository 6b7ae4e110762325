"""``vlm-export``: export checkpoints into a Triton model repository, build engines, keep configs in sync."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from export.parity import ParityReport

DEFAULT_REPOSITORY = Path("model_repository")


def _is_checkpoint(folder: Path) -> bool:
    if (folder / "config.json").is_file():
        return True
    print(f"vlm-export: {folder} is not a Hugging Face checkpoint folder (no config.json)", file=sys.stderr)
    return False


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
    from export.tensorrt_sidecar import EngineMismatchError

    try:
        settings = BuildSettings(args.precision, args.workspace_mib << 20, args.timing_cache)
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


def _clip(args: argparse.Namespace) -> int:
    from export.clip_export import export_clip

    if not _is_checkpoint(args.checkpoint):
        return 2
    if not _reported(export_clip(args.checkpoint, args.repository, opset=args.opset), args.repository):
        return 1
    print(f"exported CLIP into {args.repository}")
    if args.runtime == "tensorrt":
        return _build_engines(args, ["clip_vision", "clip_text"])
    return 0


def _llava(args: argparse.Namespace) -> int:
    from export.llava_export import export_llava

    if not _is_checkpoint(args.checkpoint):
        return 2
    try:
        reports = export_llava(args.checkpoint, args.repository, fuse_projector=args.fuse_projector, opset=args.opset)
    except ValueError as error:
        print(f"vlm-export llava: {error}", file=sys.stderr)
        return 2
    if not _reported(reports, args.repository):
        return 1
    print(f"exported LLaVA into {args.repository} (llava_decoder loads the checkpoint from {args.checkpoint})")
    if args.runtime == "tensorrt":
        return _build_engines(args, ["llava_vision"] if args.fuse_projector else ["llava_vision", "llava_projector"])
    return 0


def _repository(args: argparse.Namespace) -> int:
    from export.repository import stale_files, write_repository

    if args.check:
        stale = stale_files(args.repository)
        if stale:
            print("out of date (run `vlm-export repository`):\n  " + "\n  ".join(stale), file=sys.stderr)
            return 1
        print(f"{args.repository}: generated files are up to date")
        return 0
    written = write_repository(args.repository)
    print(f"wrote {len(written)} generated files under {args.repository}")
    return 0


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    from export.tensorrt_sidecar import DEFAULT_PRECISION, DEFAULT_WORKSPACE_BYTES, PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help="TensorRT builder precision")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    clip = commands.add_parser("clip", help="export a CLIP checkpoint to ONNX with parity checks")
    clip.add_argument("--checkpoint", type=Path, required=True, help="local Hugging Face CLIP checkpoint folder")
    clip.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    clip.add_argument("--opset", type=int, default=18)
    clip.add_argument(
        "--runtime", choices=("onnx", "tensorrt"), default="onnx", help="tensorrt: also build engines (GPU host)"
    )
    _add_engine_options(clip)
    clip.set_defaults(run=_clip)

    llava = commands.add_parser("llava", help="export a LLaVA checkpoint's vision tower and projector to ONNX")
    llava.add_argument("--checkpoint", type=Path, required=True, help="local Hugging Face LLaVA checkpoint folder")
    llava.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    llava.add_argument(
        "--fuse-projector", action="store_true", help="one ONNX graph for vision tower + projector (one step fewer)"
    )
    llava.add_argument("--opset", type=int, default=18)
    llava.add_argument(
        "--runtime", choices=("onnx", "tensorrt"), default="onnx", help="tensorrt: also build engines (GPU host)"
    )
    _add_engine_options(llava)
    llava.set_defaults(run=_llava)

    engine = commands.add_parser(
        "engine", help="build TensorRT engines for the exported encoders, with parity checks (GPU host)"
    )
    engine.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    engine.add_argument(
        "--component", action="append", help="an exported encoder, e.g. clip_vision (repeatable; default: all)"
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
