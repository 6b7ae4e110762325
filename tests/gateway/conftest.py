"""tests/gateway/: the real ``vlm-gateway`` (a process per configuration) in front of the session's real
tritonserver, called with the real OpenAI SDK, httpx and Chromium."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from tests.gateway.processes import ImageServer
from tests.images import encode, scene

API_KEY = "gateway-test-key"
OTHER_KEY = "gateway-other-key"
TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whichever gateway test runs first also exports the tiny checkpoints and starts the session's tritonserver
    (minutes on a busy 2-core machine), so these tests get more than the suite's default limit."""
    for item in items:
        if "tests/gateway/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(600))


def data_url(image: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(image).decode()}"


@pytest.fixture(scope="session")
def scene_png() -> bytes:
    return encode(scene(seed=77))


@pytest.fixture(scope="session")
def image_server(scene_png: bytes) -> Iterator[ImageServer]:
    routes = {
        "/scene.png": (200, {"Content-Type": "image/png"}, scene_png),
        "/notes.txt": (200, {"Content-Type": "text/plain"}, b"not an image"),
        "/huge.png": (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"\0" * (3 * 1024 * 1024)),
        "/missing.png": (404, {}, b"no"),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-loopback": (302, {"Location": "/scene.png"}, b""),
    }
    with ImageServer(routes) as running:
        yield running


@pytest.fixture(scope="session")
def gateway(server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The main gateway: keys on, image URLs from the test image server on loopback (an internal deployment)."""
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    args = [
        "--allow-image-host", "127.0.0.1",
        "--allow-private-image-addresses",
        "--max-image-mib", "2",
        "--image-fetch-timeout", "2",
        "--ready-cache", "0",
    ]  # fmt: skip
    with GatewayProcess(server.grpc_url, log, *args, api_keys=f"{API_KEY},{OTHER_KEY}") as running:
        yield running


@pytest.fixture(scope="session")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=TIMEOUT_S) as c:
        yield c


@pytest.fixture
def sdk(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S) as client:
        yield client
