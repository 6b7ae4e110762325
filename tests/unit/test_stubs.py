"""serving.stubs on real processes: a parent with children that carry a python-backend stub's command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.stubs import STUB_NAME, Stub, StubWatch, is_running, python_stubs

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


@dataclass
class FakeServer:
    """A parent process (standing in for tritonserver) with three stand-in stubs and one other child."""

    process: subprocess.Popen[str]
    pids: list[int]  # clip_preprocess_0_0, clip_preprocess_0_1, llava_decoder_0_0
    stub: Path
    repository: Path

    def stubs(self) -> dict[str, Stub]:
        return python_stubs(self.process.pid)

    def start_replacement(self, model: str, instance: str) -> subprocess.Popen[bytes]:
        """Another stub for ``instance`` (a child of the test, as Triton's own replacement would be)."""
        model_file = f"{self.repository}/{model}/1/model.py"
        return subprocess.Popen([str(self.stub), model_file, "shm", "1", "1", "0", "lib", "0", instance, "D", "2"])


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_running(pid):  # a zombie until its parent reaps it: not running either way
        assert time.monotonic() < deadline, f"{pid} still runs 10 s after SIGKILL"
        time.sleep(0.01)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeServer]:
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
        yield FakeServer(parent, pids, stub, tmp_path / "repo")
    finally:
        for child in python_stubs(parent.pid).values():
            os.kill(child.pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_stubs_are_found_by_model_and_instance_and_a_killed_one_is_gone(server: FakeServer) -> None:
    assert {name: (s.model, s.pid) for name, s in server.stubs().items()} == {
        "clip_preprocess_0_0": ("clip_preprocess", server.pids[0]),
        "clip_preprocess_0_1": ("clip_preprocess", server.pids[1]),
        "llava_decoder_0_0": ("llava_decoder", server.pids[2]),
    }
    kill(server.pids[2])
    assert set(server.stubs()) == {"clip_preprocess_0_0", "clip_preprocess_0_1"}


def test_a_process_that_is_gone_is_not_running() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not is_running(process.pid)
    assert is_running(os.getpid())


def test_a_stub_killed_between_two_looks_is_reported_once_by_its_model(server: FakeServer) -> None:
    watch = StubWatch()
    assert watch.look(server.stubs()) == set()
    kill(server.pids[2])
    assert watch.look(server.stubs()) == {"llava_decoder"}
    assert watch.look(server.stubs()) == set()


def test_a_stub_missing_from_a_listing_is_still_watched(server: FakeServer) -> None:
    # The listing a look gets can lack a stub that runs (or one killed just after the look checked it):
    # taking the listing as the whole truth would never report its death.
    watch = StubWatch()
    watch.look(server.stubs())
    partial = {name: stub for name, stub in server.stubs().items() if name != "clip_preprocess_0_1"}
    assert watch.look(partial) == set()
    kill(server.pids[1])
    assert watch.look(server.stubs()) == {"clip_preprocess"}


def test_a_listing_read_before_the_stub_died_does_not_report_it_twice(server: FakeServer) -> None:
    watch = StubWatch()
    watch.look(server.stubs())
    listing = server.stubs()
    kill(server.pids[0])
    assert watch.look(listing) == {"clip_preprocess"}
    assert watch.look(server.stubs()) == set()


def test_a_new_pid_for_a_running_instance_is_a_replacement_and_after_a_death_a_death(server: FakeServer) -> None:
    watch = StubWatch()
    watch.look(server.stubs())
    replacement = server.start_replacement("llava_decoder", "llava_decoder_0_0")
    try:
        new = Stub(replacement.pid, "llava_decoder", "llava_decoder_0_0")
        assert watch.look({**server.stubs(), "llava_decoder_0_0": new}) == set()  # a reload: the old one runs on
        kill(server.pids[2])  # the old instance leaves once the reload is done: no death
        assert watch.look({**server.stubs(), "llava_decoder_0_0": new}) == set()
        kill(replacement.pid)  # then the new one dies, and Triton starts another under the same name
        again = server.start_replacement("llava_decoder", "llava_decoder_0_0")
        try:
            third = Stub(again.pid, "llava_decoder", "llava_decoder_0_0")
            assert watch.look({**server.stubs(), "llava_decoder_0_0": third}) == {"llava_decoder"}
        finally:
            again.kill()
            again.wait()
    finally:
        replacement.kill()
        replacement.wait()


def test_a_forgotten_model_is_not_reported(server: FakeServer) -> None:
    watch = StubWatch()
    watch.look(server.stubs())
    watch.forget("clip_preprocess")  # its instances were replaced by a reload
    kill(server.pids[0])
    assert watch.look(server.stubs()) == set()
    kill(server.pids[2])
    assert watch.look(server.stubs()) == {"llava_decoder"}


def test_an_instance_that_died_before_the_look_after_its_reload_is_reported(server: FakeServer) -> None:
    watch = StubWatch()
    watch.look(server.stubs())
    assert watch.look_after_reload("clip_preprocess", server.stubs) == set()  # both instances run
    kill(server.pids[2])  # as if the reload's new llava_decoder stub died before anything looked at it
    assert watch.look_after_reload("llava_decoder", server.stubs) == {"llava_decoder"}
    assert watch.look(server.stubs()) == set()  # reported once
