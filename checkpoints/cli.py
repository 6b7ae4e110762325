"""``vlm-checkpoint``: make preset checkpoints (Hugging Face layout) and score shapes-world ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _make(args: argparse.Namespace) -> int:
    from checkpoints.presets import PRESETS, build_preset

    if args.preset not in PRESETS:
        print(f"vlm-checkpoint: unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    out = build_preset(args.preset, args.out)
    print(f"wrote {args.preset} checkpoint to {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from checkpoints.evaluations import evaluation_for

    if not (args.checkpoint / "config.json").is_file():
        message = f"{args.checkpoint} is not a Hugging Face checkpoint folder (no config.json)"
        print(f"vlm-checkpoint: {message}", file=sys.stderr)
        return 2
    try:
        evaluation = evaluation_for(args.checkpoint)
    except ValueError as error:
        print(f"vlm-checkpoint: {error}", file=sys.stderr)
        return 2
    rows = [("in-process", evaluation.local(args.checkpoint, args.count))]
    for protocol in args.protocol or ():
        served = evaluation.served(args.checkpoint, args.count, args.url, protocol, args.model)
        rows.append((f"served ({protocol})", served))
    print(evaluation.title.format(args.count))
    print(f"{'':<16}" + "".join(f"{heading:>20}" for heading, _ in evaluation.columns))
    for label, scores in rows:
        print(f"{label:<16}" + "".join(f"{scores[key]:>20.1%}" for _, key in evaluation.columns))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-checkpoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("make", help="make a preset checkpoint (Hugging Face layout)")
    make.add_argument(
        "--preset",
        required=True,
        help="tiny-clip, clip-vit-base-patch32, clip-vit-large-patch14-336, tiny-llava, llava-1.5-7b, tiny-siglip, "
        "tiny-idefics3, "
        "shapes-clip, shapes-llava (trained here on a synthetic shapes world, a few minutes each on 2 cores; "
        "shapes-llava trains or reuses shapes-clip beside its --out)",
    )
    make.add_argument("--out", type=Path, required=True, help="folder to write")
    make.set_defaults(run=_make)

    evaluate = commands.add_parser(
        "evaluate", help="score a shapes-world CLIP or LLaVA checkpoint on the held-out split, in process and served"
    )
    evaluate.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint (also what --url serves)")
    evaluate.add_argument("--count", type=int, default=200, help="held-out images (scenes, for LLaVA)")
    evaluate.add_argument("--url", default="localhost:8001", help="a server serving the checkpoint's export")
    evaluate.add_argument(
        "--model", help="the name the server serves the export under (`vlm-export model --name`); default: the family's"
    )
    evaluate.add_argument(
        "--protocol", choices=("grpc", "http"), action="append", help="also score through the server (repeatable)"
    )
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
