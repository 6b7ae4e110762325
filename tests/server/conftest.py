"""One real tritonserver for the whole session, on free loopback ports, serving tiny-clip and tiny-llava."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.launcher import TritonServer, loopback_options
from tests.reference import ClipReference, LlavaReference


@pytest.fixture(scope="session")
def server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    options = loopback_options(model_repository, tmp_path_factory.mktemp("logs") / "tritonserver.log", exit_timeout_s=2)
    with TritonServer(options) as running:
        yield running


@pytest.fixture(scope="session")
def reference(tiny_clip: Path) -> ClipReference:
    return ClipReference(tiny_clip)


@pytest.fixture(scope="session")
def llava_reference(tiny_llava: Path) -> LlavaReference:
    return LlavaReference(tiny_llava)


@pytest.fixture(params=["grpc", "http"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(server: TritonServer, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url
