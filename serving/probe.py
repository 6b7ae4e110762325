"""``vlm-probe ready|live``: health checks for Docker and Kubernetes that exercise the python models.

``/v2/health/ready`` stays true while a python model's stub is dead (Triton 2.51), so each check also sends
every served model (each exported checkpoint, by its name) its probe ensemble a real request with a fresh input (the
response caches must not answer). The models, their probe ensembles and the probe's task come from the repository's
configs (serving/served.py): ``rank``
(an image and a text through a dual encoder's rank ensemble: preprocess, both encoders, the tokenizer and the
similarity, e.g. ``clip_rank``) or ``chat`` (one generated token about an image through a VLM's ensemble:
preprocess, vision tower, projector and one decoder step, e.g. ``llava``).

- ``ready``: the server is ready and every model answers. An orchestrator sends no traffic meanwhile.
- ``live``: the server is live, and no model that Triton reports ready fails with a server error (a dead
  stub, a hang past the timeout). A model being (re)loaded is not a liveness failure; one that is ready but
  broken is, and the orchestrator restarts the container. Either check counts "busy" (a full queue) as up.

``--family`` and ``--model`` (or ``$VLM_FAMILIES`` / ``$VLM_MODELS``) narrow the probes to what ``vlm-serve`` was
told to serve. Exit status 0 when the check passes, 1 otherwise, with one line per model.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from serving.served import Probe, ProbeTask, RepositoryError, select, select_models, served_models

_BUSY = ("exceeds maximum queue size", "request timeout expired", ": busy: ")


@dataclass(frozen=True)
class Outcome:
    name: str  # the checkpoint's name (clip, llava, or its `vlm-export model --name`)
    model: str
    ready: bool  # Triton reports the model ready
    answered: bool  # it served the probe (or was busy)
    detail: str


def _fresh_image() -> bytes:
    """A small PNG of random colours: no two probes share a response-cache entry."""
    pixels = np.frombuffer(secrets.token_bytes(16 * 16 * 3), dtype=np.uint8).reshape(16, 16, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _bytes_input(name: str, items: list[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [len(items)], "BYTES")
    tensor.set_data_from_numpy(np.array(items, dtype=object))
    return tensor


def _probe_rank(client: grpcclient.InferenceServerClient, model: str, timeout_s: float) -> None:
    text = f"a probe {secrets.token_hex(4)}".encode()
    inputs = [_bytes_input("image", [_fresh_image()]), _bytes_input("text", [text])]
    client.infer(model, inputs, client_timeout=timeout_s)


def _probe_chat(client: grpcclient.InferenceServerClient, model: str, timeout_s: float) -> None:
    """One token of a reply about a fresh image, through the decoupled ensemble's stream."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
    max_tokens = grpcclient.InferInput("max_tokens", [1], "INT32")
    max_tokens.set_data_from_numpy(np.array([1], dtype=np.int32))
    inputs = [
        _bytes_input("image", [_fresh_image()]),
        _bytes_input("messages", [json.dumps(messages).encode()]),
        max_tokens,
    ]
    answers: queue.Queue[InferenceServerException | None] = queue.Queue()

    def on_response(result: object, error: InferenceServerException | None) -> None:
        if error is not None:
            answers.put(error)
        elif result is not None and result.get_response().parameters["triton_final_response"].bool_param:
            answers.put(None)

    client.start_stream(callback=on_response, stream_timeout=timeout_s)
    try:
        client.async_stream_infer(model, inputs, enable_empty_final_response=True)
        try:
            error = answers.get(timeout=timeout_s)
        except queue.Empty:
            raise InferenceServerException(f"no answer within {timeout_s:g} s") from None
        if error is not None:
            raise error
    finally:
        client.stop_stream(cancel_requests=True)


# By the task the repository's config names for the probe model.
PROBES: dict[ProbeTask, Callable[[grpcclient.InferenceServerClient, str, float], None]] = {
    "rank": _probe_rank,
    "chat": _probe_chat,
}


def probe_model(url: str, name: str, probe: Probe, timeout_s: float) -> Outcome:
    model = probe.model
    with grpcclient.InferenceServerClient(url) as client:
        try:
            ready = client.is_model_ready(model, client_timeout=timeout_s)
        except InferenceServerException as error:
            return Outcome(name, model, False, False, f"not ready ({error.message()})")
        if not ready:
            return Outcome(name, model, False, False, "not ready")
        started = time.monotonic()
        try:
            PROBES[probe.task](client, model, timeout_s)
        except InferenceServerException as error:
            message = error.message() or str(error)
            if any(phrase in message.lower() for phrase in _BUSY):
                return Outcome(name, model, True, True, f"busy ({message})")
            return Outcome(name, model, True, False, message)
    return Outcome(name, model, True, True, f"answered in {(time.monotonic() - started) * 1000:.0f} ms")


def server_state(url: str, timeout_s: float) -> tuple[bool, bool]:
    """(live, ready); both False when nothing answers."""
    with grpcclient.InferenceServerClient(url) as client:
        try:
            return client.is_server_live(client_timeout=timeout_s), client.is_server_ready(client_timeout=timeout_s)
        except InferenceServerException:
            return False, False


def check(kind: str, url: str, probes: list[tuple[str, Probe]], timeout_s: float) -> tuple[bool, list[str]]:
    """``probes``: (a model's name, its probe) pairs."""
    live, ready = server_state(url, timeout_s)
    lines = [f"server: {'live' if live else 'not live'}, {'ready' if ready else 'not ready'}"]
    if not live:
        return False, lines
    outcomes = [probe_model(url, name, probe, timeout_s) for name, probe in probes]
    lines += [f"{o.name} ({o.model}): {o.detail}" for o in outcomes]
    if kind == "ready":
        return ready and all(o.answered for o in outcomes), lines
    return all(o.answered or not o.ready for o in outcomes), lines


def _probes(repository: Path, families: list[str] | None, names: list[str] | None) -> list[tuple[str, Probe]]:
    """(name, probe) of every model the families and names pick (the flags, else $VLM_FAMILIES and $VLM_MODELS);
    every model the repository holds when none picks any."""
    if not families and not names:
        families, names = os.environ.get("VLM_FAMILIES", "").split(), os.environ.get("VLM_MODELS", "").split()
    served = served_models(repository)
    picked = {name for family in select(repository, families or ()) for name in family.names}
    picked |= {model.name for model in select_models(repository, names or ())}
    chosen = [model for name, model in served.items() if name in picked or not (families or names)]
    return [(model.name, Probe(*model.probe)) for model in chosen if model.probe is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vlm-probe", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("kind", choices=("ready", "live"))
    parser.add_argument("--url", default="localhost:8001", help="Triton's gRPC endpoint")
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path(os.environ.get("VLM_REPOSITORY", "model_repository")),
        help="the model repository the server serves, whose configs name the models and their probes "
        "(default: $VLM_REPOSITORY, else ./model_repository)",
    )
    parser.add_argument(
        "--family",
        action="append",
        help="a family the server serves (repeatable; default: $VLM_FAMILIES, a space-separated list, else every "
        "family the repository holds)",
    )
    parser.add_argument(
        "--model",
        action="append",
        help="a model the server serves, by name (repeatable, adds to --family; default: $VLM_MODELS, a "
        "space-separated list)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    args = parser.parse_args(argv)
    try:
        probes = _probes(args.repository, args.family, args.model)
    except RepositoryError as error:
        parser.error(str(error))
    if not probes:
        parser.error(f"the repository {args.repository} holds no model to probe")
    passed, lines = check(args.kind, args.url, probes, args.timeout)
    print(f"vlm-probe {args.kind}: {'pass' if passed else 'FAIL'}; " + "; ".join(lines), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
