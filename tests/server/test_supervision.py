"""vlm-serve recovers by itself: a killed python stub is reloaded, a crashed tritonserver is restarted, and
readiness is false meanwhile; SIGTERM under load drains what was admitted, refuses the rest and leaves no
process behind. One supervised vlm-serve for the module (tests run in order and share it)."""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest

from client import Completion, ModelNotReadyError, RetryPolicy, ServerUnavailableError, VLMClient, VLMError
from export.families.clip.spec import CLIP_PREPROCESS
from export.families.llava.spec import LLAVA_DECODER
from serving.stubs import is_running
from tests.server.serve_process import ServeProcess, wait_for

pytestmark = pytest.mark.timeout(600)
# How long the server may take to serve again. A decoder's reload is vLLM's start: the stub, then vLLM's engine core,
# then its worker, each a new Python importing torch and vLLM, one after another: 28 s on a quiet 2-core machine and
# 38-57 s with other work on it (a kill loop of 2026-12-06; no reload hung in it). A restart loads every model.
RELOAD_BOUND_S = 120
ENGINE_REBUILD_BOUND_S = 60  # the stub lives: only the engine core and its worker start again
RESTART_BOUND_S = 180
QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]


@pytest.fixture(scope="module")
def supervised(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    # A long drain bound: the SIGTERM test's streams must finish within it on a slow machine. Only the checkpoints
    # these tests call: each start and restart loads every served model, and llava_next would add a vLLM engine.
    args = ["--exit-timeout", "30", "--model", "clip", "--model", "llava"]
    with ServeProcess(model_repository, tmp_path_factory.mktemp("supervised"), *args) as serve:
        yield serve


def fresh_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)


def serves_clip_and_llava(serve: ServeProcess, seed: int) -> bool:
    with VLMClient(serve.grpc_url, timeout=30, retry=RetryPolicy(attempts=1)) as client:
        try:
            embeds = client.embed_images([fresh_image(seed)])
            texts = client.embed_texts([f"a text {seed}"])
            completion = client.generate(QUESTION, [fresh_image(seed + 1)], max_tokens=2)
        except VLMError:
            return False
    return embeds.shape[0] == texts.shape[0] == 1 and completion.completion_tokens >= 1


def kill_one_stub(serve: ServeProcess, model: str) -> list[psutil.Process]:
    """SIGKILL one of the model's stubs; its descendants (the decoder's vLLM engine core, worker and resource
    tracker) as they were just before."""
    stubs = serve.stubs(model)
    assert stubs, f"no python stub runs {model}"
    descendants = psutil.Process(stubs[-1].pid).children(recursive=True)
    os.kill(stubs[-1].pid, signal.SIGKILL)
    return descendants


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("model", ["llava_decoder", "clip_preprocess"])
def test_a_killed_stub_is_reloaded_and_readiness_is_false_until_it_serves_again(
    supervised: ServeProcess, model: str
) -> None:
    assert serves_clip_and_llava(supervised, seed=1)
    killed_at = time.monotonic()
    descendants = kill_one_stub(supervised, model)

    def said() -> str:
        return f"(vlm-serve said: {supervised.errors[-6:]})"

    # Each reload would otherwise leak an engine (about 1.1 GB a worker on CPU): nothing the stub started outlives it.
    wait_for(lambda: all(gone(p) for p in descendants), "the stub's processes die with it", timeout_s=15)

    wait_for(lambda: not supervised.ready(), "readiness turns false", timeout_s=10, explain=said)
    wait_for(lambda: supervised.ready(), "the server is ready again", RELOAD_BOUND_S, explain=said)
    seed = iter(range(100, 10_000, 2))
    wait_for(lambda: serves_clip_and_llava(supervised, next(seed)), "requests succeed again", 30, explain=said)
    assert time.monotonic() - killed_at < RELOAD_BOUND_S
    wait_for(lambda: supervised.said(f"the python stub of {model} died"), "vlm-serve tells of the death", 10)
    instances = {"llava_decoder": LLAVA_DECODER, "clip_preprocess": CLIP_PREPROCESS}[model].resources.instance_count
    assert len(supervised.stubs(model)) == instances


def engine_cores(serve: ServeProcess) -> list[int]:
    """vLLM's engine-core processes under the decoder's stub (setproctitle names them)."""
    stubs = {stub.pid for stub in serve.stubs("llava_decoder")}
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline.startswith(b"VLLM::EngineCore") and parent in stubs:
            found.append(int(entry.name))
    return found


def refused_as_not_ready(serve: ServeProcess) -> bool:
    with VLMClient(serve.grpc_url, timeout=30, retry=RetryPolicy(attempts=1)) as client:
        try:
            client.generate([{"role": "user", "content": "hi"}], max_tokens=1)
        except ModelNotReadyError:
            return True
        except VLMError:
            return False
    return False


def test_a_killed_engine_core_is_rebuilt_and_requests_are_refused_as_not_ready_meanwhile(
    supervised: ServeProcess,
) -> None:
    assert serves_clip_and_llava(supervised, seed=7)
    (core,) = engine_cores(supervised)
    killed_at = time.monotonic()
    os.kill(core, signal.SIGKILL)
    wait_for(lambda: refused_as_not_ready(supervised), "the decoder refuses as not ready", timeout_s=10)
    seed = iter(range(20_000, 30_000, 2))
    wait_for(lambda: serves_clip_and_llava(supervised, next(seed)), "requests succeed again", ENGINE_REBUILD_BOUND_S)
    assert time.monotonic() - killed_at < ENGINE_REBUILD_BOUND_S
    assert engine_cores(supervised) and core not in engine_cores(supervised)


def post_raw(serve: ServeProcess, body: bytes, *headers: str) -> None:
    """Send one HTTP request as it is; the server may die before it answers."""
    host, port = serve.http_url.split(":")
    request = [
        "POST /v2/models/clip_text_embed/infer HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall("\r\n".join(request).encode() + b"\r\n\r\n" + body)
        with contextlib.suppress(OSError):
            sock.recv(4096)


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body that inflates to ``inflated_bytes`` of one JSON string (about 2 MB compressed for 2 GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["')]
    chunk = b"a" * (1 << 20)
    parts += [compressor.compress(chunk) for _ in range(inflated_bytes // len(chunk))]
    parts += [compressor.compress(b'"]}]}'), compressor.flush()]
    return b"".join(parts)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"[" * 150_000 + b"]" * 150_000, ()),
        (gzip_bomb(2 << 30), ("Content-Encoding: gzip",)),
    ],
    ids=["json-nested-150000-deep", "gzip-bomb-2GiB"],
)
def test_a_request_that_crashes_tritonserver_is_survived_without_a_manual_step(
    supervised: ServeProcess, body: bytes, headers: tuple[str, ...]
) -> None:
    assert gzip.decompress(gzip_bomb(1 << 20))[:10] == b'{"inputs":'  # the bomb is what it says it is
    before = supervised.tritonserver.pid
    stubs_before = supervised.stubs()
    sent_at = time.monotonic()
    post_raw(supervised, body, *headers)
    wait_for(lambda: not is_running(before), "tritonserver 2.51 dies of it", timeout_s=60)
    seed = iter(range(20_000, 30_000, 2))
    wait_for(lambda: serves_clip_and_llava(supervised, next(seed)), "requests succeed again", RESTART_BOUND_S)
    assert time.monotonic() - sent_at < RESTART_BOUND_S
    assert supervised.tritonserver.pid != before
    # Requests can succeed before start() has seen every model ready and vlm-serve has said so.
    wait_for(lambda: supervised.said("tritonserver is serving again"), "vlm-serve tells of the restart", 10)
    assert not [stub for stub in stubs_before if stub.is_alive()], "stubs of the dead server still run"


def test_sigterm_under_load_finishes_admitted_requests_refuses_new_ones_and_leaves_no_process(
    supervised: ServeProcess,
) -> None:
    wait_for(lambda: serves_clip_and_llava(supervised, seed=50_000), "the server serves", timeout_s=120)
    server = supervised.tritonserver
    stubs = supervised.stubs()
    streaming = threading.Barrier(5)

    def admitted_stream(seed: int) -> object:
        with VLMClient(supervised.grpc_url, timeout=60, retry=RetryPolicy(attempts=1)) as client:
            pieces = client.generate_stream(QUESTION, [fresh_image(seed)], max_tokens=400)
            first = next(pieces)
            streaming.wait(timeout=60)
            try:
                return [first, *pieces][-1]
            except VLMError as error:
                return error

    def refused() -> bool:
        with VLMClient(supervised.grpc_url, timeout=10, retry=RetryPolicy(attempts=1)) as client:
            try:
                client.embed_texts([f"after the signal {time.monotonic()}"])
            except (ServerUnavailableError, ModelNotReadyError):
                return True
        return False

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(admitted_stream, 40_000 + i) for i in range(4)]
        streaming.wait(timeout=120)  # every stream has its first piece: all four are admitted and running
        assert supervised.process is not None
        said_before = len(supervised.errors)
        supervised.process.send_signal(signal.SIGTERM)
        wait_for(refused, "new requests are refused", timeout_s=10)
        results = [future.result(timeout=120) for future in futures]
    assert all(isinstance(r, Completion) and r.finish_reason in ("length", "stop") for r in results), results
    assert supervised.stop(timeout_s=60) == 0
    assert not is_running(server.pid)
    assert not [stub for stub in stubs if stub.is_alive()]
    assert not any("restarting" in line for line in supervised.errors[said_before:])  # a stop, not a crash
