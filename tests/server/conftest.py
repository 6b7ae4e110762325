"""tests/server/: each test runs over both protocols (the session's one tritonserver is in tests/conftest.py); modules
with a ``FamilyExport`` on their ``pytestmark`` are served by a family server (tests/server/family_servers.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints import llava_training
from checkpoints.clip_training import short_schedule, train_clip
from serving.launcher import TritonServer
from tests.server.family_servers import Exported, FamilyServers, module_export

_FAMILY_SERVERS = pytest.StashKey[FamilyServers]()
# Short training schedules: test_shapes_accuracy compares served with in-process scores, not the presets' accuracy.
SHAPES_CLIP_SCHEDULE = short_schedule(60)
SHAPES_LLAVA_SCHEDULE = dataclasses.replace(llava_training.short_schedule(20), clip=SHAPES_CLIP_SCHEDULE)


@pytest.fixture(params=["grpc", "http"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(server: TritonServer, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture(scope="session")
def shapes_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shapes-world CLIP trained briefly (session-wide: a family server may export it for a module beside it)."""
    return train_clip(tmp_path_factory.mktemp("checkpoints") / "shapes-clip", SHAPES_CLIP_SCHEDULE, progress=False)


@pytest.fixture(scope="session")
def shapes_llava(shapes_checkpoint: Path) -> Path:
    """A shapes-world LLaVA on ``shapes_checkpoint``'s vision tower, trained briefly."""
    out = shapes_checkpoint.parent / "shapes-llava"
    return llava_training.train_llava(out, shapes_checkpoint, SHAPES_LLAVA_SCHEDULE, progress=False)


@pytest.fixture(scope="package")
def family_servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FamilyServers]:
    servers = FamilyServers(request.session.items, tmp_path_factory)
    request.session.stash[_FAMILY_SERVERS] = servers
    try:
        yield servers
    finally:
        del request.session.stash[_FAMILY_SERVERS]
        servers.close()


@pytest.fixture(scope="module")
def export_output(request: pytest.FixtureRequest, family_servers: FamilyServers) -> Exported:
    """The repository and printed output of the FamilyExport on this module's ``pytestmark``."""
    return family_servers.export(module_export(request.node).key, request.getfixturevalue)


@pytest.fixture(scope="module")
def family_server(request: pytest.FixtureRequest, family_servers: FamilyServers) -> TritonServer:
    """The family server that serves this module's FamilyExport (with another module's, maybe)."""
    return family_servers.server(module_export(request.node).key, request.getfixturevalue)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if (servers := item.session.stash.get(_FAMILY_SERVERS, None)) is not None:
        servers.after(item)
