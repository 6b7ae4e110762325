"""serving.generation.vllm_engine without vLLM: the engine settings from config parameters, the dtype rule, the
orphan-proof spawn wrapper on real processes, and the loop thread around a stand-in engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from export.families.llava.spec import LLAVA_DECODER
from serving.generation.vllm_engine import MIB, EngineLoop, EngineSettings, orphan_proof_executable, resolve_dtype


def settings(on_gpu: bool = False, context_length: int = 4096, **overrides: str) -> EngineSettings:
    return EngineSettings.from_parameters({**LLAVA_DECODER.parameters, **overrides}, context_length, on_gpu)


def test_the_spec_parameters_give_a_cpu_engine_with_a_sized_kv_cache_float32_and_eager_mode() -> None:
    args = settings().engine_args(Path("/models/llava"))
    assert args["model"] == "/models/llava"
    assert args["dtype"] == "float32"
    assert args["enforce_eager"] is True
    assert args["kv_cache_memory_bytes"] == int(LLAVA_DECODER.parameters["cpu_kv_cache_mib"]) * MIB
    assert "gpu_memory_utilization" not in args
    assert args["enable_mm_embeds"] is True
    assert args["limit_mm_per_prompt"] == {"image": int(LLAVA_DECODER.parameters["max_images"])}
    assert args["max_num_seqs"] == int(LLAVA_DECODER.parameters["max_num_seqs"])
    assert args["enable_chunked_prefill"] is True and args["enable_prefix_caching"] is True


def test_on_a_gpu_the_engine_sizes_its_cache_by_memory_share_and_keeps_cuda_graphs() -> None:
    args = settings(on_gpu=True).engine_args(Path("/m"))
    assert args["gpu_memory_utilization"] == float(LLAVA_DECODER.parameters["gpu_memory_utilization"])
    assert "kv_cache_memory_bytes" not in args
    assert args["enforce_eager"] is False
    assert args["dtype"] == "auto"


def test_max_model_len_defaults_to_the_checkpoint_context_and_never_exceeds_it() -> None:
    assert settings(context_length=2048).max_model_len == 2048
    assert settings(context_length=2048, max_model_len="512").max_model_len == 512
    assert settings(context_length=2048, max_model_len="9999").max_model_len == 2048


def test_explicit_settings_override_the_per_target_defaults() -> None:
    chosen = settings(enforce_eager="false", dtype="bfloat16", enable_prefix_caching="false")
    assert (chosen.enforce_eager, chosen.dtype, chosen.prefix_caching) == (False, "bfloat16", False)


@pytest.mark.parametrize(
    ("name", "value"),
    [("enable_chunked_prefill", "yes"), ("max_num_seqs", "0"), ("cpu_kv_cache_mib", "-1"), ("dtype", "int8")],
)
def test_a_bad_engine_parameter_is_an_operator_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name if name != "dtype" else "dtype must be"):
        settings(**{name: value})


def test_auto_dtype_is_float32_on_cpu_and_vllms_own_on_a_gpu() -> None:
    assert resolve_dtype("auto", on_gpu=False) == "float32"
    assert resolve_dtype("auto", on_gpu=True) == "auto"
    assert resolve_dtype("float16", on_gpu=False) == "float16"


CHILD_OF_A_THREAD = textwrap.dedent(
    """
    import multiprocessing, sys, threading, time
    from serving.generation.vllm_engine import orphan_proof_executable

    def child():
        time.sleep(120)

    if __name__ == "__main__":
        multiprocessing.set_executable(orphan_proof_executable())
        def start():
            process = multiprocessing.get_context("spawn").Process(target=child)
            process.start()
            print(process.pid, flush=True)
            time.sleep(120)
        threading.Thread(target=start, daemon=True).start()
        time.sleep(120)
    """
)


def process_alive(pid: int) -> bool:
    """Running (a zombie counts as gone): read from /proc, so it works for a pid that is no child of ours."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _executable(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


@pytest.mark.timeout(60)
def test_a_spawned_child_dies_with_a_parent_that_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_A_THREAD)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=".")
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # The wrapper arms the signal, then becomes Python: a parent killed in that first instant leaves an orphan
    # (setpriv cannot check that its parent still lives), so the kill waits until the child runs Python.
    python = os.path.realpath(sys.executable)
    deadline = time.monotonic() + 10
    while _executable(child) != python and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child), "the spawned child outlived its killed parent"


def test_the_wrapper_runs_this_python() -> None:
    wrapper = orphan_proof_executable()
    out = subprocess.run([wrapper, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    assert out.stdout.strip() == sys.executable


class StandInEngine:
    """What EngineLoop needs of an AsyncLLM: a coroutine API on the loop and a shutdown."""

    def __init__(self) -> None:
        self.shut_down = False

    async def answer(self) -> str:
        await asyncio.sleep(0)
        return "ok"

    def shutdown(self) -> None:
        self.shut_down = True


def test_the_loop_runs_coroutines_and_rebuilds_a_dead_engine() -> None:
    built: list[StandInEngine] = []

    def build() -> StandInEngine:
        built.append(StandInEngine())
        return built[-1]

    loop = EngineLoop(build, log_error=print).start(timeout_s=10)
    try:
        assert loop.ready.is_set()
        assert loop.submit(loop.engine.answer()).result(5) == "ok"
        loop.restart()
        deadline = time.monotonic() + 5
        while len(built) < 2 or not loop.ready.is_set():
            assert time.monotonic() < deadline, "the engine was not rebuilt"
            time.sleep(0.01)
        assert built[0].shut_down and loop.engine is built[1]
    finally:
        loop.stop()
    assert built[1].shut_down


def test_a_failing_build_fails_the_start_with_its_error() -> None:
    def build() -> StandInEngine:
        raise RuntimeError("no memory for the KV cache")

    with pytest.raises(RuntimeError, match="KV cache"):
        EngineLoop(build, log_error=print).start(timeout_s=10)
