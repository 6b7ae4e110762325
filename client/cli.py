"""``vlm-client``: every task of the served models from the shell. Errors print one ``vlm-client: ...`` line
and exit 1."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from client import prompts
from client.errors import InvalidInputError, VLMError
from client.generation import Completion
from client.parameters import GENERATION_PARAMETERS
from client.pixel_parameters import PIXEL_PARAMETERS
from client.ranking import DEFAULT_TEMPLATE
from client.retry import RetryPolicy
from client.video_parameters import VIDEO_PARAMETERS
from client.vlm_client import VLMClient


class Printer:
    """Plain text or JSON; with ``--stream`` the text pieces as they come (JSON: one object per line)."""

    def __init__(self, as_json: bool, stream: bool) -> None:
        self.as_json = as_json
        self.stream = stream

    def result(self, result: Any, plain: str) -> None:
        print(json.dumps(result) if self.as_json else plain, flush=True)

    def generation(self, items: Iterator[str | Completion], **extra: Any) -> Completion:
        """Prints a generation (streamed or whole) and returns its completion."""
        for item in items:
            if isinstance(item, Completion):
                if self.as_json:
                    self.result({**extra, **item.summary()}, "")
                elif self.stream:
                    print(flush=True)
                else:
                    print(item.text, flush=True)
                return item
            if self.stream:
                text = json.dumps({"delta": item}) + "\n" if self.as_json else item
                sys.stdout.write(text)
                sys.stdout.flush()
        raise VLMError("the stream ended without a final response")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    # The CLI's --stream says how to print; each request's own stream flag is set by the client call.
    parameters = (*GENERATION_PARAMETERS, *VIDEO_PARAMETERS, *PIXEL_PARAMETERS)
    names = [parameter.name for parameter in parameters if parameter.name != "stream"]
    params = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "stop", None):
        params["stop"] = args.stop
    if getattr(args, "schema", None) is not None:
        params["response_format"] = prompts.json_format(_schema(args.schema))
    elif getattr(args, "json_object", False):
        params["response_format"] = prompts.json_format()
    return params


def _schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"--schema: cannot read a JSON schema from {path.name}: {error}") from None
    if not isinstance(schema, dict):
        raise InvalidInputError("--schema: the file must hold one JSON object (a JSON schema)")
    return schema


def _generate(client: VLMClient, args: argparse.Namespace, messages: list[dict], images: list[Any]) -> Completion:
    items = client.chat(messages, images, stream=args.stream, **_params(args))
    return args.printer.generation(items)


def _models(client: VLMClient, args: argparse.Namespace) -> None:
    served = client.served_models()
    rows = [{"name": m.name, "kind": m.kind, "family": m.family, "models": m.triton_models} for m in served.values()]
    plain = "\n".join(f"{r['name']}\t{r['kind']}\t{r['family']}" for r in rows)
    args.printer.result({"models": rows}, plain or "no served model")


def _embed_image(client: VLMClient, args: argparse.Namespace) -> None:
    vectors = client.embed_images([Path(p) for p in args.images])
    _print_embeddings(args, "image", args.images, vectors)


def _embed_text(client: VLMClient, args: argparse.Namespace) -> None:
    _print_embeddings(args, "text", args.texts, client.embed_texts(args.texts))


def _print_embeddings(args: argparse.Namespace, kind: str, names: list[str], vectors: np.ndarray) -> None:
    result = {"embeddings": [{kind: n, "embedding": v.tolist()} for n, v in zip(names, vectors, strict=True)]}
    lines = []
    for name, vector in zip(names, vectors, strict=True):
        head = ", ".join(f"{x:+.4f}" for x in vector[:4])
        lines.append(f"{name}: dim {vector.size}, norm {np.linalg.norm(vector):.4f}, [{head}, ...]")
    args.printer.result(result, "\n".join(lines))


def _classify(client: VLMClient, args: argparse.Namespace) -> None:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    probabilities = client.classify(Path(args.image), labels, args.template)
    plain = "\n".join(f"{p:8.4f}  {label}" for label, p in probabilities.items())
    args.printer.result({"image": args.image, "probabilities": probabilities}, plain)


def _rank(client: VLMClient, args: argparse.Namespace) -> None:
    if args.text is not None:
        ranked = client.rank(text=args.text, images=[Path(p) for p in args.candidates])
    else:
        ranked = client.rank(image=Path(args.image), texts=args.candidates)
    rows = [{"candidate": args.candidates[r.index], "score": r.score, "probability": r.probability} for r in ranked]
    plain = "\n".join(f"{r['probability']:8.4f}  {r['score']:+8.3f}  {r['candidate']}" for r in rows)
    args.printer.result({"ranking": rows}, plain)


def _index(client: VLMClient, args: argparse.Namespace) -> None:
    index = client.index_folder(args.folder, args.index, progress=args.progress)
    args.printer.result({"index": args.index, "images": len(index.names)}, f"{args.index}: {len(index.names)} images")


def _search(client: VLMClient, args: argparse.Namespace) -> None:
    hits = client.search(args.index, args.query, args.k)
    plain = "\n".join(f"{hit.score:+.4f}  {hit.name}" for hit in hits)
    args.printer.result({"query": args.query, "hits": [vars(hit) for hit in hits]}, plain)


def _caption(client: VLMClient, args: argparse.Namespace) -> None:
    _generate(client, args, prompts.caption(args.style), [Path(args.image)])


def _captions(client: VLMClient, args: argparse.Namespace) -> None:
    completions = client.captions(Path(args.image), args.n, args.style, **_params(args))
    plain = "\n".join(f"{k + 1}. {c.text}" for k, c in enumerate(completions))
    args.printer.result({"captions": [c.summary() for c in completions]}, plain)


def _ask(client: VLMClient, args: argparse.Namespace) -> None:
    _generate(client, args, prompts.question(args.question), [Path(args.image)])


def _analyze_document(client: VLMClient, args: argparse.Namespace) -> None:
    messages = prompts.document(None if args.query else args.kind, args.query)
    _generate(client, args, messages, [Path(args.image)])


def _extract_structured(client: VLMClient, args: argparse.Namespace) -> None:
    result = client.extract_structured(Path(args.image), **_params(args))
    args.printer.result(result, json.dumps(result, indent=2))


def read_questions(path: Path) -> list[tuple[Path, str]]:
    """(image, question) pairs from JSON lines (``{"image": ..., "question": ...}``) or a CSV with those
    columns; image paths are relative to the file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
    else:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as error:
            raise InvalidInputError(f"{path.name}: not JSON lines ({error})") from None
    pairs = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("image") or not row.get("question"):
            raise InvalidInputError(f"{path.name}: row {number} needs an image and a question")
        pairs.append((path.parent / row["image"], str(row["question"])))
    return pairs


def _batch_ask(client: VLMClient, args: argparse.Namespace) -> None:
    pairs = read_questions(Path(args.file))
    completions = client.batch_ask(pairs, args.concurrency, progress=args.progress, **_params(args))
    rows = [
        {"image": str(image), "question": question, **c.summary()}
        for (image, question), c in zip(pairs, completions, strict=True)
    ]
    plain = "\n".join(f"{r['image']}\t{r['question']}\t{r['text']}" for r in rows)
    args.printer.result({"answers": rows}, plain)


def _chat(client: VLMClient, args: argparse.Namespace) -> None:
    """Each turn is sent with the conversation so far; the images and videos go with the first turn."""
    turns = args.turns or (line.strip() for line in sys.stdin if line.strip())
    messages: list[dict[str, Any]] = []
    images = [Path(p) for p in args.image]
    videos = {"videos": [Path(p) for p in args.video]} if args.video else {}
    for turn in turns:
        first = prompts.user_turn(turn, len(images), len(args.video))[0]
        content = first if not messages else {"role": "user", "content": turn}
        messages.append(content)
        if not args.printer.as_json:
            print(f"user: {turn}\nassistant: ", end="", flush=True)
        completion = args.printer.generation(
            client.chat(messages, images, stream=args.stream, **videos, **_params(args)), turn=len(messages) // 2 + 1
        )
        messages.append({"role": "assistant", "content": completion.text})


def _generation_options() -> argparse.ArgumentParser:
    """One option per generation parameter of ``client.parameters`` (its type and meaning from there)."""
    options = argparse.ArgumentParser(add_help=False)
    for parameter in GENERATION_PARAMETERS:
        if parameter.name in ("stream", "top_logprobs"):  # the CLI streams with --stream and prints no alternatives
            continue
        flag = "--" + parameter.name.replace("_", "-")
        if parameter.triton_type == "BOOL":
            options.add_argument(flag, action="store_true", default=None, help=parameter.description)
        else:
            options.add_argument(
                flag, type=parameter.python_type, help=f"{parameter.description}, in {parameter.range_text()}"
            )
    for parameter in PIXEL_PARAMETERS:  # the resize of the images (and video frames) of a Qwen2-VL-family model
        options.add_argument(
            "--" + parameter.name.replace("_", "-"),
            type=parameter.python_type,
            help=f"{parameter.description}; only a model whose preprocessing has a pixel budget takes it",
        )
    options.add_argument("--stop", action="append", help="stop string (repeatable)")
    options.add_argument("--schema", type=Path, help="a JSON schema file: the answer is JSON valid against it")
    options.add_argument("--json-object", action="store_true", help="the answer is a JSON object")
    return options


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """Options taken before or after the subcommand (the subcommand's copy keeps the earlier value)."""
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--url", default=default(None), help="server (default localhost:8001 gRPC, :8000 HTTP)")
    options.add_argument("--protocol", choices=("grpc", "http"), default=default("grpc"))
    options.add_argument("--timeout", type=float, default=default(60.0), help="seconds to wait for each answer")
    options.add_argument("--retries", type=int, default=default(3), help="attempts for transient errors")
    options.add_argument(
        "--model",
        default=default(None),
        metavar="NAME",
        help="the served model to call, by name (`vlm-client models` lists them): a dual encoder for the embedding "
        "commands (default clip), a VLM for the generation commands (default llava)",
    )
    options.add_argument("--json", action="store_true", default=default(False), help="print JSON")
    options.add_argument("--stream", action="store_true", default=default(False), help="print text as it comes")
    options.add_argument(
        "--no-progress", dest="progress", action="store_false", default=default(True), help="hide progress bars"
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-client", description=__doc__, parents=[_common_options(True)])
    commands = parser.add_subparsers(dest="command", required=True)
    common, generation = _common_options(False), _generation_options()

    def command(name: str, run: Callable, help: str, generates: bool = False) -> argparse.ArgumentParser:
        parents = [common, generation] if generates else [common]
        sub = commands.add_parser(name, help=help, parents=parents)
        sub.set_defaults(run=run, generates=generates)
        return sub

    command("models", _models, "the models the server serves, by name, with their kind and family")
    sub = command("embed-image", _embed_image, "normalised image embeddings (a dual encoder: CLIP, SigLIP, ...)")
    sub.add_argument("images", nargs="+", help="image files")
    sub = command("embed-text", _embed_text, "normalised text embeddings (a dual encoder)")
    sub.add_argument("texts", nargs="+")
    sub = command("classify", _classify, "zero-shot classification of one image")
    sub.add_argument("image")
    sub.add_argument("--labels", required=True, help="comma-separated labels")
    sub.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt for each label; {} is the label")
    sub = command("rank", _rank, "rank images for a text (--text), or texts for an image (--image)")
    query = sub.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="rank the candidate images for this text")
    query.add_argument("--image", help="rank the candidate texts for this image")
    sub.add_argument("candidates", nargs="+", help="image files (with --text) or texts (with --image)")
    sub = command("index", _index, "embed every image in a folder into a search index")
    sub.add_argument("folder")
    sub.add_argument("--index", required=True, help="index file to write (.npz)")
    sub = command("search", _search, "the images of an index closest to a text")
    sub.add_argument("query")
    sub.add_argument("--index", required=True, help="index file written by 'index'")
    sub.add_argument("-k", type=int, default=5, help="how many images")
    sub = command("caption", _caption, "caption an image", generates=True)
    sub.add_argument("image")
    sub.add_argument("--style", choices=tuple(prompts.CAPTION_STYLES), default="descriptive")
    sub = command("captions", _captions, "n diverse captions, sampled at rising temperatures", generates=True)
    sub.add_argument("image")
    sub.add_argument("-n", type=int, default=3)
    sub.add_argument("--style", choices=tuple(prompts.CAPTION_STYLES), default="descriptive")
    sub = command("ask", _ask, "answer a question about an image", generates=True)
    sub.add_argument("image")
    sub.add_argument("question")
    sub = command("batch-ask", _batch_ask, "answer (image, question) pairs from a JSONL or CSV file", generates=True)
    sub.add_argument("file", help='JSON lines {"image": ..., "question": ...} or CSV with image,question columns')
    sub.add_argument("--concurrency", type=int, default=4)
    sub = command("chat", _chat, "a multi-turn conversation (turns as arguments, else one per stdin line)", True)
    sub.add_argument("turns", nargs="*", help="user turns, in order")
    sub.add_argument("--image", action="append", default=[], help="image for the first turn (repeatable)")
    sub.add_argument("--video", action="append", default=[], help="video for the first turn (repeatable)")
    for parameter in VIDEO_PARAMETERS:
        sub.add_argument(
            "--" + parameter.name.replace("_", "-"),
            type=parameter.python_type,
            help=f"{parameter.description}, in {parameter.range_text()}",
        )
    sub = command("analyze-document", _analyze_document, "summarise or query a document image", generates=True)
    sub.add_argument("image")
    sub.add_argument("--kind", choices=tuple(prompts.DOCUMENT_KINDS), default="summary")
    sub.add_argument("--query", help="a free question about the document (instead of --kind)")
    sub = command("extract-structured", _extract_structured, "the image's content as JSON", generates=True)
    sub.add_argument("image")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.printer = Printer(args.json, args.stream)
    try:
        retry = RetryPolicy(attempts=args.retries)
        names = {"chat_model" if args.generates else "embedding_model": args.model} if args.model else {}
        with VLMClient(args.url, protocol=args.protocol, timeout=args.timeout, retry=retry, **names) as client:
            args.run(client, args)
    except (VLMError, OSError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, OSError) and error.filename:  # a missing file: name it, not its whole path
            message = f"{Path(error.filename).name}: {error.strerror}"
        print(f"vlm-client: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vlm-client: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
