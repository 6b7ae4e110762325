"""No vLLM process outlives the decoder's stub: a stand-in stub starts a real ``AsyncLLM`` on tiny-llava as the
decoder does (``start_vllm``), generates after warm-up (a healthy engine is not killed by its own guard), and is then
SIGKILLed. Its engine core and worker are stopped first, as a stuck process would be: vLLM's own death pipe needs a
worker that still runs Python, so only the parent-death signals can take them. Every descendant (engine core,
worker, resource tracker) must be gone within seconds, and the shared-memory queues they had mapped unlinked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

STUB = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from pathlib import Path

    from export.families.llava.spec import LLAVA_DECODER
    from serving.generation.vllm_engine import EngineSettings, start_vllm

    async def generate(engine, request_id: str) -> list[int]:
        from vllm import SamplingParams

        sampling = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
        tokens: list[int] = []
        async for output in engine.generate({"prompt_token_ids": [1, 5, 9, 13]}, sampling, request_id):
            tokens = list(output.outputs[0].token_ids)
        return tokens

    if __name__ == "__main__":
        settings = EngineSettings.from_parameters(
            {**LLAVA_DECODER.parameters, "cpu_kv_cache_mib": "64"}, 256, on_gpu=False
        )
        loop = start_vllm(Path(sys.argv[1]), settings, None, print)
        first = loop.submit(generate(loop.engine, "warm-up")).result(120)
        time.sleep(1.0)  # the guard is armed in every process by now: a false kill would fail the next request
        second = loop.submit(generate(loop.engine, "served")).result(60)
        print("SERVED", len(first), len(second), flush=True)
        time.sleep(600)
    """
)


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone, or a zombie (a finished helper not reaped yet)
        return []


def _shared_queues(processes: list[psutil.Process]) -> set[Path]:
    """vLLM's shared-memory queues (``/dev/shm/psm_*``) mapped by these processes."""
    found: set[Path] = set()
    for process in processes:
        for region in process.memory_maps(grouped=True):
            if region.path.startswith("/dev/shm/psm_"):
                found.add(Path(region.path))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
@pytest.mark.timeout(240)
def test_a_killed_stub_leaves_no_vllm_process_nor_shared_queue_behind(tiny_llava: Path, tmp_path: Path) -> None:
    script = tmp_path / "stub.py"
    script.write_text(STUB)
    stub = subprocess.Popen(
        [sys.executable, str(script), str(tiny_llava)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.getcwd(),
        env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
    )
    try:
        assert stub.stdout is not None
        line = stub.stdout.readline()
        while line and not line.startswith("SERVED"):  # start_vllm's own prints come first
            line = stub.stdout.readline()
        assert line.split() == ["SERVED", "4", "4"], "the engine did not serve after warm-up"
    finally:
        descendants = psutil.Process(stub.pid).children(recursive=True) if stub.poll() is None else []
        commands = {p.pid: _command(p) for p in descendants}
        vllm = [p for p in descendants if commands[p.pid][:1] in (["VLLM::EngineCore"], ["VLLM::Worker"])]
        queues = _shared_queues(vllm)
        for process in vllm:
            process.send_signal(signal.SIGSTOP)  # stuck: only a signal the kernel sends can end it
        stub.kill()
        stub.wait()
    assert {commands[p.pid][0] for p in vllm} == {"VLLM::EngineCore", "VLLM::Worker"}, commands
    assert queues, "no shared-memory queue was found to check"
    deadline = time.monotonic() + 15
    while not all(_gone(p) for p in descendants) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [f"{p.pid} {commands[p.pid][:2]}" for p in descendants if not _gone(p)]
    for process in descendants:  # never leak them into the rest of the run, whatever the outcome
        if not _gone(process):
            process.kill()
    assert not alive, f"processes outlived the killed stub: {alive}"
    deadline = time.monotonic() + 10
    while any(queue.exists() for queue in queues) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [queue for queue in queues if queue.exists()], "shared-memory queues outlived the engine"
