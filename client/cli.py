"""``vlm-client``: call the served models from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from client.errors import VLMError
from client.vlm_client import DEFAULT_TEMPLATE, VLMClient


def _embed_image(client: VLMClient, args: argparse.Namespace) -> dict:
    vectors = client.embed_images([Path(p) for p in args.images])
    return {"embeddings": [{"image": p, "embedding": v.tolist()} for p, v in zip(args.images, vectors, strict=True)]}


def _embed_text(client: VLMClient, args: argparse.Namespace) -> dict:
    vectors = client.embed_texts(args.texts)
    return {"embeddings": [{"text": t, "embedding": v.tolist()} for t, v in zip(args.texts, vectors, strict=True)]}


def _classify(client: VLMClient, args: argparse.Namespace) -> dict:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise VLMError("--labels: give at least one label, comma-separated")
    return {"image": args.image, "probabilities": client.classify(Path(args.image), labels, args.template)}


def _print_plain(result: dict) -> None:
    if "probabilities" in result:
        for label, prob in result["probabilities"].items():
            print(f"{prob:8.4f}  {label}")
        return
    for item in result["embeddings"]:
        name = item.get("image") or item.get("text")
        vector = np.asarray(item["embedding"])
        head = ", ".join(f"{x:+.4f}" for x in vector[:4])
        print(f"{name}: dim {vector.size}, norm {np.linalg.norm(vector):.4f}, [{head}, ...]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-client", description=__doc__)
    parser.add_argument("--url", help="server address (default localhost:8001 for gRPC, localhost:8000 for HTTP)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True)

    embed_image = commands.add_parser("embed-image", help="normalised CLIP image embeddings")
    embed_image.add_argument("images", nargs="+", help="image files")
    embed_image.set_defaults(run=_embed_image)

    embed_text = commands.add_parser("embed-text", help="normalised CLIP text embeddings")
    embed_text.add_argument("texts", nargs="+")
    embed_text.set_defaults(run=_embed_text)

    classify = commands.add_parser("classify", help="zero-shot classification of one image")
    classify.add_argument("image", help="image file")
    classify.add_argument("--labels", required=True, help="comma-separated labels")
    classify.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt for each label; {} is the label")
    classify.set_defaults(run=_classify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with VLMClient(args.url, protocol=args.protocol, timeout=args.timeout) as client:
            result = args.run(client, args)
    except (VLMError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"vlm-client: {message}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout)
        print()
    else:
        _print_plain(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
