"""serving.parent_death on real processes: a process that multiprocessing spawned (as vLLM spawns its workers, with
the plain interpreter) arms a SIGKILL parent-death signal and dies with its parent, or at once if its parent died
before it could arm it; a process that multiprocessing did not start is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.unit.test_vllm_engine import process_alive

PARENT = textwrap.dedent(
    """
    import ctypes, multiprocessing, os, sys, time
    from pathlib import Path
    from serving.parent_death import die_with_multiprocessing_parent

    def armed() -> int:
        value = ctypes.c_int()
        ctypes.CDLL("libc.so.6").prctl(2, ctypes.byref(value))  # PR_GET_PDEATHSIG
        return value.value

    def child(marker: str, wait_for_orphaning: bool, parent: int) -> None:
        if wait_for_orphaning:  # the parent dies during the imports that precede the plugin in vLLM's workers
            while os.getppid() == parent:
                time.sleep(0.01)
        die_with_multiprocessing_parent()
        Path(marker).write_text(str(armed()))
        time.sleep(120)

    if __name__ == "__main__":
        marker, mode = sys.argv[1], sys.argv[2]
        die_with_multiprocessing_parent()  # not started by multiprocessing: nothing happens
        print(armed(), flush=True)
        process = multiprocessing.get_context("spawn").Process(
            target=child, args=(marker, mode == "early", os.getpid()), daemon=True
        )
        process.start()
        print(process.pid, flush=True)
        if mode == "early":
            os._exit(0)  # gone before the child arms its signal
        time.sleep(120)
    """
)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not process_alive(pid)


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], int, int, Path]:
    script, marker = tmp_path / "parent.py", tmp_path / "armed"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(marker), mode], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert parent.stdout is not None
    parent_armed = int(parent.stdout.readline())
    return parent, parent_armed, int(parent.stdout.readline()), marker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
@pytest.mark.timeout(60)
def test_a_spawned_child_arms_sigkill_lives_with_its_parent_and_dies_when_it_is_killed(tmp_path: Path) -> None:
    parent, parent_armed, child, marker = _start(tmp_path, "late")
    try:
        assert parent_armed == 0, "a process that multiprocessing did not start got a parent-death signal"
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "9"  # SIGKILL
        time.sleep(0.5)
        assert process_alive(child), "a child whose parent lives was killed"
    finally:
        parent.kill()
        parent.wait()
    assert _gone_within(child, 10), "the child outlived its killed parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
@pytest.mark.timeout(60)
def test_a_child_whose_parent_died_before_it_armed_the_signal_dies_at_once(tmp_path: Path) -> None:
    parent, _, child, marker = _start(tmp_path, "early")
    parent.wait()
    assert _gone_within(child, 30), "an orphaned child lived on"
    assert not marker.exists(), "the orphaned child ran on past arming its signal"
