"""serving.stubs on real processes: a parent with children that carry a python-backend stub's command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serving.stubs import STUB_NAME, is_running, python_stubs

PARENT = """
import subprocess, sys, time
stub, folder = sys.argv[1], sys.argv[2]
children = [
    subprocess.Popen([stub, f"{folder}/{model}/1/model.py", "shm", "1", "1", "0", "lib", "0", instance, "DEFAULT", "2"])
    for model, instance in (("clip_preprocess", "clip_preprocess_0_0"), ("clip_preprocess", "clip_preprocess_0_1"),
                            ("llava_decoder", "llava_decoder_0_0"))
]
other = subprocess.Popen(["sleep", "600"])
print(" ".join(str(c.pid) for c in children), flush=True)
time.sleep(600)
"""


def test_stubs_are_found_by_model_and_instance_and_a_killed_one_is_gone(tmp_path: Path) -> None:
    stub = tmp_path / STUB_NAME  # a stand-in under the stub's name: Python running each model.py, which sleeps
    stub.symlink_to(sys.executable)
    for model in ("clip_preprocess", "llava_decoder"):
        (tmp_path / "repo" / model / "1").mkdir(parents=True)
        (tmp_path / "repo" / model / "1" / "model.py").write_text("import time\ntime.sleep(600)\n")
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(stub), str(tmp_path / "repo")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        found = python_stubs(parent.pid)
        assert {name: (s.model, s.pid) for name, s in found.items()} == {
            "clip_preprocess_0_0": ("clip_preprocess", pids[0]),
            "clip_preprocess_0_1": ("clip_preprocess", pids[1]),
            "llava_decoder_0_0": ("llava_decoder", pids[2]),
        }
        os.kill(pids[2], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_running(pids[2]):  # a zombie until its parent reaps it: not running either way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert set(python_stubs(parent.pid)) == {"clip_preprocess_0_0", "clip_preprocess_0_1"}
    finally:
        for child in python_stubs(parent.pid).values():
            os.kill(child.pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_is_not_running() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not is_running(process.pid)
    assert is_running(os.getpid())
