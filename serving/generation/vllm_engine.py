"""vLLM's ``AsyncLLM`` inside the decoder's python-backend stub, on an asyncio loop of its own.

Triton calls ``execute`` on the stub's thread; every request then runs as a coroutine on this loop, where
``AsyncLLM`` batches them in flight (paged KV cache, chunked prefill, prefix caching). vLLM is imported only
when the engine starts, so the module imports without vLLM or a GPU.

vLLM starts its engine-core and worker processes with ``spawn``. If the stub or tritonserver is killed they
would be orphaned (several GB on CPU), so the engine core is spawned through a wrapper that gives it a parent-death
signal, from this module's long-lived loop thread (the signal follows the thread that spawned the child), and the
workers, which the engine core spawns with the plain interpreter, arm their own in vLLM's plugin hook
(``vllm_plugin``). The signal is SIGKILL: the engine core handles SIGTERM in Python, which a blocking wait never
gets back to. The resource tracker is started before the wrapper is set, so it is not killed with the stub: it
outlives vLLM's processes and unlinks the shared-memory queues (160 MB each) that they leave behind when killed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from serving.generation.vllm_plugin import DIE_WITH_PARENT_ENV, NO_BUSY_WAIT_ENV
from serving.validators import positive_int

MIB = 2**20
HEALTH_CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class EngineSettings:
    """The engine's settings, from the decoder's config parameters (``export/families/llava/spec.py`` sets them)."""

    max_num_seqs: int  # sequences one step runs
    max_model_len: int  # context length the engine plans for (prompt + completion)
    on_gpu: bool
    cpu_kv_cache_bytes: int  # the KV cache on a CPU host (vLLM's CPU backend needs it sized)
    gpu_memory_utilization: float  # the share of GPU memory vLLM may take (weights, activations, KV cache)
    dtype: str  # float32, float16, bfloat16, or vLLM's auto (the checkpoint's, float32 cast to half precision)
    chunked_prefill: bool
    prefix_caching: bool
    tensor_parallel_size: int
    enforce_eager: bool  # no torch.compile / CUDA graphs: faster start, slower steps
    max_images: int

    @classmethod
    def from_parameters(cls, parameters: dict[str, str], context_length: int, on_gpu: bool) -> EngineSettings:
        """``on_gpu`` picks the per-target defaults: the KV cache's sizing and ``enforce_eager: auto``."""
        max_model_len = int(parameters.get("max_model_len", "0"))
        eager = parameters.get("enforce_eager", "auto")
        return cls(
            max_num_seqs=positive_int("max_num_seqs", parameters["max_num_seqs"]),
            max_model_len=min(max_model_len, context_length) if max_model_len > 0 else context_length,
            on_gpu=on_gpu,
            cpu_kv_cache_bytes=positive_int("cpu_kv_cache_mib", parameters["cpu_kv_cache_mib"]) * MIB,
            gpu_memory_utilization=float(parameters.get("gpu_memory_utilization", "0.9")),
            dtype=resolve_dtype(parameters.get("dtype", "auto"), on_gpu),
            chunked_prefill=_flag(parameters, "enable_chunked_prefill"),
            prefix_caching=_flag(parameters, "enable_prefix_caching"),
            tensor_parallel_size=positive_int("tensor_parallel_size", parameters.get("tensor_parallel_size", "1")),
            enforce_eager=not on_gpu if eager == "auto" else _flag(parameters, "enforce_eager"),
            max_images=positive_int("max_images", parameters["max_images"]),
        )

    def engine_args(self, checkpoint: Path) -> dict[str, Any]:
        """Keyword arguments of vLLM's ``AsyncEngineArgs``."""
        args: dict[str, Any] = {
            "model": str(checkpoint),
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "enable_chunked_prefill": self.chunked_prefill,
            "enable_prefix_caching": self.prefix_caching,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            # The exported encoders compute the image embeddings; vLLM takes them as they are.
            "enable_mm_embeds": True,
            "limit_mm_per_prompt": {"image": self.max_images},
            "disable_log_stats": False,  # the decoder's metrics read the scheduler's statistics
            # JSON schemas: on tiny random weights, 20 of 20 answers were valid with guidance and no free
            # whitespace; xgrammar let control bytes into strings, and free whitespace let greedy answers loop.
            # No properties beyond a schema's own (OpenAI's strict mode): with them, greedy answers looped on
            # invented keys until max_tokens.
            "structured_outputs_config": {
                "backend": "guidance",
                "disable_any_whitespace": True,
                "disable_additional_properties": True,
            },
        }
        if self.on_gpu:
            args["gpu_memory_utilization"] = self.gpu_memory_utilization
        else:
            args["kv_cache_memory_bytes"] = self.cpu_kv_cache_bytes
        return args


def resolve_dtype(name: str, on_gpu: bool) -> str:
    """``auto``: float32 on CPU, where vLLM's own auto would cast a float32 checkpoint to bfloat16 (greedy tokens
    then differ from Hugging Face's), and vLLM's auto on a GPU."""
    if name not in ("auto", "float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {name!r}")
    return "float32" if name == "auto" and not on_gpu else name


def _flag(parameters: dict[str, str], name: str) -> bool:
    value = parameters.get(name, "false").lower()
    if value not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value == "true"


def orphan_proof_executable() -> str:
    """A script that runs this Python with a parent-death signal, for ``multiprocessing.set_executable``."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # util-linux is missing: children are not tied to the stub
        return sys.executable
    script = Path(tempfile.mkdtemp(prefix="vlm-spawn-")) / "python"
    script.write_text(f'#!/bin/sh\nexec {setpriv} --pdeathsig KILL "{sys.executable}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


class EngineLoop:
    """One thread running an asyncio loop that owns an ``AsyncLLM``; ``build`` makes (and remakes) it."""

    def __init__(self, build: Callable[[], Any], log_error: Callable[[str], None]) -> None:
        self.build = build
        self.log_error = log_error
        self.loop = asyncio.new_event_loop()
        self.engine: Any = None
        self.ready = threading.Event()  # set while the engine can take requests
        self._started: Future[None] = Future()
        self._restarting = False
        self.thread = threading.Thread(target=self._run, name="vllm-engine-loop", daemon=True)

    def start(self, timeout_s: float) -> EngineLoop:
        self.thread.start()
        self._started.result(timeout_s)  # raises what building the engine raised
        return self

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def restart(self) -> None:
        """The engine died (its core process was killed): build a new one; requests are refused meanwhile."""
        self.ready.clear()
        if self._restarting:
            return
        self._restarting = True
        self.loop.call_soon_threadsafe(self._rebuild)

    def stop(self, timeout_s: float = 30.0) -> None:
        self.ready.clear()
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout_s)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.engine = self.build()
        except BaseException as error:  # reported to start(); the stub's initialize fails with it
            self._started.set_exception(error)
            return
        self.ready.set()
        self._started.set_result(None)
        self.loop.create_task(self._watch_health())
        try:
            self.loop.run_forever()
        finally:
            self._shutdown_engine()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _watch_health(self) -> None:
        """Rebuilds a dead engine (its core process killed or crashed) without waiting for a request to fail."""
        while True:
            await asyncio.sleep(HEALTH_CHECK_INTERVAL_S)
            if self.ready.is_set() and getattr(self.engine, "errored", False):
                self.log_error("the engine died; building a new one")
                self.restart()

    def _rebuild(self) -> None:
        self._shutdown_engine()
        try:
            self.engine = self.build()  # blocks the loop: nothing can run without an engine anyway
            self.ready.set()
        except Exception as error:
            self.log_error(f"rebuilding the engine failed: {error}")
        finally:
            self._restarting = False

    def _shutdown_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                engine.shutdown()
            except Exception as error:  # a dead engine may fail to shut down cleanly
                self.log_error(f"engine shutdown: {error}")


def start_vllm(
    checkpoint: Path, settings: EngineSettings, stat_logger: Callable[..., Any] | None, log_error: Callable[[str], None]
) -> EngineLoop:
    """Import vLLM and start an ``AsyncLLM`` for ``checkpoint`` on its own loop thread."""
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if not settings.on_gpu:
        # CPU hosts: the engine core and its worker must not busy-wait for each other on cores that the model, the
        # server and its clients need (cancels came after the streams they cancel had ended); see vllm_plugin.
        # An operator who prefers vLLM's spin sets the variable to 0.
        os.environ.setdefault(NO_BUSY_WAIT_ENV, "1")
    os.environ.setdefault(DIE_WITH_PARENT_ENV, "1")
    resource_tracker.ensure_running()  # before the wrapper: see the module's docstring
    multiprocessing.set_executable(orphan_proof_executable())

    def build() -> Any:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**settings.engine_args(checkpoint))
        return AsyncLLM.from_engine_args(args, stat_loggers=[stat_logger] if stat_logger else None)

    return EngineLoop(build, log_error).start(timeout_s=900)
