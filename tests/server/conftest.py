"""tests/server/: each test runs over both protocols (the session's one tritonserver is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from serving.launcher import TritonServer


@pytest.fixture(params=["grpc", "http"])
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(server: TritonServer, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url
