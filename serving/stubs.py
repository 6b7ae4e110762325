"""The python-backend stub processes of a running tritonserver, read from /proc (Linux).

Each model instance of the python backend runs in its own stub process, a child of tritonserver started as
``triton_python_backend_stub <repository>/<model>/<version>/model.py <shm region> ... <instance name> ...``.
Triton 2.51 does not restart a stub that dies: the model stays READY while every request to that instance
fails, so the supervisor watches these processes itself (``StubWatch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
_INSTANCE_ARG = 8  # the stub launcher's argument order: ... parent pid, python lib path, ipc handle, instance name
RELIST_PAUSE_S = 0.2  # before a second listing, when one lacked an instance that should run


@dataclass(frozen=True)
class Stub:
    pid: int
    model: str  # the model folder's name
    instance: str  # e.g. "llava_decoder_0_0"

    def is_alive(self) -> bool:
        """Still running, and still this stub (not another process that was given the pid since)."""
        args = _arguments(self.pid)
        return len(args) > _INSTANCE_ARG and args[_INSTANCE_ARG] == self.instance and is_running(self.pid)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in task.read_text().split()]
        except OSError:  # the thread ended while we looked
            continue
    return children


def _arguments(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def python_stubs(server_pid: int) -> dict[str, Stub]:
    """Instance name -> stub, for every running stub process of the server."""
    stubs = {}
    for pid in _children(server_pid):
        args = _arguments(pid)
        if len(args) <= _INSTANCE_ARG or Path(args[0]).name != STUB_NAME or not is_running(pid):
            continue
        model = Path(args[1]).parent.parent.name
        stubs[args[_INSTANCE_ARG]] = Stub(pid, model, args[_INSTANCE_ARG])
    return stubs


class StubWatch:
    """The stubs of one server, remembered from look to look, so that every death of one is seen.

    Taking each listing as the whole truth loses deaths: a stub killed after the last look checked it but
    before that look's listing was read is in neither, and a listing of /proc can miss a live child for a
    moment. So a remembered stub is forgotten only once a look finds it dead (and reports it) or its model
    is forgotten on purpose (``forget``, after a reload replaced its instances).
    """

    def __init__(self) -> None:
        self.known: dict[str, Stub] = {}  # instance name -> stub

    def look(self, listing: dict[str, Stub]) -> set[str]:
        """Remember ``listing`` (``python_stubs`` of now); the models with a stub that died since the last look."""
        dead = {name: stub for name, stub in self.known.items() if not stub.is_alive()}
        alive = {name: stub for name, stub in self.known.items() if name not in dead}
        died = {stub.model for stub in dead.values()}
        listing = {name: stub for name, stub in listing.items() if dead.get(name) != stub}  # read before it died
        for name, stub in listing.items():
            # The same instance under a new pid replaces the remembered one: on purpose while that one still
            # runs (a reload starts the new instances first); a death if it stopped since it was checked
            # (Triton 2.51 starts a replacement itself under traffic, which answers "not healthy").
            previous = alive.get(name)
            if previous is not None and previous.pid != stub.pid and not previous.is_alive():
                died.add(previous.model)
        self.known = {**alive, **listing}
        return died

    def forget(self, model: str) -> None:
        self.known = {name: stub for name, stub in self.known.items() if stub.model != model}

    def look_after_reload(self, model: str, list_stubs: Callable[[], dict[str, Stub]]) -> set[str]:
        """A look once ``model`` was reloaded: its old instances left on purpose, and each must run again. One that
        is missing from two listings died before this look (a stub killed as its load finished), which a plain
        look cannot see: it never knew that stub."""
        instances = {name for name, stub in self.known.items() if stub.model == model}
        self.forget(model)
        died = self.look(list_stubs())
        if instances - self.known.keys():
            time.sleep(RELIST_PAUSE_S)  # a listing of /proc can miss a live child for a moment
            died |= self.look(list_stubs())
        if instances - self.known.keys():
            died.add(model)
        return died
