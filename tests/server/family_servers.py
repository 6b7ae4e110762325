"""Family servers: tritonservers for the checkpoints that tests/server/ modules export into repositories of their
own (``FamilyExport`` on a module's ``pytestmark``), shared between modules.

Each checkpoint is exported into its own repository (what its module checks; a dual encoder it serves beside, too);
the run's collected ones are then served ``CHECKPOINTS_PER_SERVER`` to a server, in collection order, from a
repository of links to their models. Each server starts its checkpoints' vLLM engines at once: an engine's start
is tens of seconds of single-threaded imports (three processes one after another), so two side by side use both of a
2-core host's cores; more would only add memory (about 2.5 GB an engine). A server starts when a module first asks
for it and stops after the last collected test of its checkpoints, so one module run alone pays only for its own
checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from export.cli import main as vlm_export
from serving.launcher import TritonServer, loopback_options

MARK = "family_server"
CHECKPOINTS_PER_SERVER = 2
# The limit on these modules' tests: the first test that needs a server also pays for its checkpoints' exports and
# the server's start (two engines at once; on a quiet 2-core host about a minute).
TEST_TIMEOUT_S = 600

Exported = tuple[Path, str]  # the repository, and what vlm-export printed


@dataclass(frozen=True)
class FamilyExport:
    """One checkpoint a family server serves: ``vlm-export <command>`` of the session fixture ``checkpoint`` into a
    repository of its own, then ``configure`` (e.g. engine settings) on that repository. ``key`` names it; its
    models' names must differ from those of the FamilyExports it may share a server with."""

    key: str
    checkpoint: str
    command: str = "model"
    configure: Callable[[Path], None] | None = None
    arguments: tuple[str, ...] = ()  # more vlm-export arguments: --name, --fuse-projector, ...
    # Exported into the same repository first: a checkpoint the module serves beside this one (e.g. the CLIP whose
    # vision tower a LLaVA reuses); a dual encoder starts no engine.
    beside: FamilyExport | None = None

    @property
    def mark(self) -> pytest.MarkDecorator:
        return getattr(pytest.mark, MARK)(self)


def module_export(node: pytest.Item | pytest.Collector) -> FamilyExport:
    mark = node.get_closest_marker(MARK)
    assert mark is not None, f"{node.name} has no FamilyExport on its pytestmark"
    export: FamilyExport = mark.args[0]
    return export


class FamilyServers:
    """The run's family exports and servers, each made on first use."""

    def __init__(self, items: list[pytest.Item], tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp = tmp_path_factory
        marked = [(item, module_export(item)) for item in items if item.get_closest_marker(MARK) is not None]
        self.collected: dict[str, FamilyExport] = {}
        for _, export in marked:
            known = self.collected.setdefault(export.key, export)
            assert known == export, f"two different FamilyExports are named {export.key!r}"
        keys = list(self.collected)  # collection order
        self.groups = [keys[i : i + CHECKPOINTS_PER_SERVER] for i in range(0, len(keys), CHECKPOINTS_PER_SERVER)]
        # Each group's last collected test: its server stops after it.
        self.last_items = [[item for item, export in marked if export.key in group][-1] for group in self.groups]
        self.exported: dict[str, Exported] = {}
        self.running: dict[int, TritonServer] = {}

    def export(self, key: str, fixture: Callable[[str], Path]) -> Exported:
        """The repository and printed output of the collected FamilyExport ``key`` (``fixture`` gets its checkpoint
        by the fixture's name)."""
        if key not in self.exported:
            export = self.collected[key]
            repository = self.tmp.mktemp(key) / "model_repository"
            capture = self.tmp.mktemp(f"{key}-log") / "export.txt"
            parts = [export] if export.beside is None else [export.beside, export]
            commands = [[p.command, "--checkpoint", str(fixture(p.checkpoint)), *p.arguments] for p in parts]
            with capture.open("w") as out, contextlib.redirect_stdout(out):
                codes = [vlm_export([*command, "--repository", str(repository)]) for command in commands]
            assert codes == [0] * len(commands), capture.read_text()
            if export.configure is not None:
                export.configure(repository)
            self.exported[key] = (repository, capture.read_text())
        return self.exported[key]

    def server(self, key: str, fixture: Callable[[str], Path]) -> TritonServer:
        """The server of ``key``'s group, started (the group exported) if it is not running yet."""
        index = next(index for index, group in enumerate(self.groups) if key in group)
        if index not in self.running:
            served = self.tmp.mktemp("family-server") / "model_repository"
            served.mkdir()
            for member in self.groups[index]:
                repository, _ = self.export(member, fixture)
                for model in repository.iterdir():
                    link = served / model.name
                    assert not link.exists(), f"two family exports on one server name a model {model.name}"
                    link.symlink_to(model, target_is_directory=True)
            log = self.tmp.mktemp("logs") / f"tritonserver-{'-'.join(self.groups[index])}.log"
            options = loopback_options(served, log, exit_timeout_s=2)
            # It starts the engines of as many servers as it stands for: the start-up time of each (a busy host's).
            options.startup_timeout_s *= len(self.groups[index])
            self.running[index] = TritonServer(options).start()
        return self.running[index]

    def after(self, item: pytest.Item) -> None:
        """Stops the server whose last collected test ``item`` was: its engines' memory is not held longer."""
        for index, last in enumerate(self.last_items):
            if item is last and index in self.running:
                self.running.pop(index).stop()

    def close(self) -> None:
        for server in self.running.values():
            server.stop()
        self.running.clear()
