"""Who gets in: API keys (401), per-key and global concurrency (429 with Retry-After, the SDK's RateLimitError),
a body that does not arrive (408), and a gateway whose Triton is down (503 with Retry-After; /health stays up)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from gateway.process import GatewayProcess
from serving.launcher import TritonServer, free_port
from tests.gateway.raw_http import send

KEYS = ("key-a", "key-b", "key-c")


@pytest.fixture(scope="module")
def limited(server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("limited") / "gateway.log"
    args = ["--max-concurrency", "2", "--max-concurrency-per-key", "1", "--retry-after", "3", "--body-timeout", "5"]
    with GatewayProcess(server.grpc_url, log, *args, api_keys=",".join(KEYS)) as running:
        yield running


def client(gateway: GatewayProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def held_embeddings(gateway: GatewayProcess) -> float:
    with client(gateway, KEYS[0]) as probe:
        text = probe.get("/metrics").text
    line = next(
        (ln for ln in text.splitlines() if ln.startswith('vlm_gateway_in_flight_requests{route="/v1/embeddings"}')), ""
    )
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


@contextlib.contextmanager
def holding_a_slot(gateway: GatewayProcess, key: str) -> Iterator[None]:
    """A request in flight: its headers and half its body are sent, the rest is held back until the block ends
    (the slot is taken before the body is read, and given back when the client leaves)."""
    before = held_embeddings(gateway)
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            f"POST /v1/embeddings HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": "clip", ')
        deadline = time.monotonic() + 10
        while held_embeddings(gateway) <= before:
            assert time.monotonic() < deadline, "the held request never arrived"
            time.sleep(0.02)
        yield


def small_chat(http: httpx.Client) -> httpx.Response:
    body = {"model": "llava", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return http.post("/v1/chat/completions", json=body)


def test_every_route_but_health_ready_and_the_page_needs_a_key(limited: GatewayProcess) -> None:
    with httpx.Client(base_url=limited.url) as anonymous:
        for path in ("/health", "/ready", "/"):
            assert anonymous.get(path).status_code == 200, path
        for path in ("/v1/models", "/metrics", "/openapi.json", "/docs", "/no-such-route"):
            reply = anonymous.get(path)
            assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer", path
            assert reply.json()["error"]["code"] == "invalid_api_key"
        assert small_chat(anonymous).status_code == 401
        assert anonymous.get("/v1/models", headers={"Authorization": "Bearer key-d"}).status_code == 401
        assert anonymous.get("/v1/models", headers={"Authorization": "Basic key-a"}).status_code == 401
    with client(limited, "key-b") as http:
        assert http.get("/v1/models").status_code == 200 and http.get("/openapi.json").status_code == 200


def test_a_second_request_on_a_busy_key_is_429_while_other_keys_are_served(limited: GatewayProcess) -> None:
    with holding_a_slot(limited, "key-a"):
        with client(limited, "key-a") as same_key:
            refused = small_chat(same_key)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
        assert "per API key" in refused.json()["error"]["message"]
        sdk = openai.OpenAI(base_url=f"{limited.url}/v1", api_key="key-a", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            sdk.embeddings.create(model="clip", input="x")
        with client(limited, "key-b") as other_key:
            assert small_chat(other_key).status_code == 200
            assert other_key.get("/v1/models").status_code == 200  # only the inference routes count
    with client(limited, "key-a") as same_key:
        assert small_chat(same_key).status_code == 200  # the slot came back when the stream closed


def test_the_global_limit_refuses_every_key_once_reached(limited: GatewayProcess) -> None:
    with holding_a_slot(limited, "key-a"), holding_a_slot(limited, "key-b"), client(limited, "key-c") as third:
        refused = small_chat(third)
        assert refused.status_code == 429 and "limit of 2 requests" in refused.json()["error"]["message"]
        metrics = third.get("/metrics").text
    assert 'vlm_gateway_rejected_requests_total{reason="concurrency"}' in metrics
    with client(limited, "key-c") as third:
        assert small_chat(third).status_code == 200


def test_a_body_that_does_not_arrive_in_time_is_408(limited: GatewayProcess) -> None:
    headers = {"Authorization": "Bearer key-a", "Content-Type": "application/json", "Content-Length": "1000"}
    reply = send(limited.url, "/v1/embeddings", headers, [b'{"model": "clip", '])  # and then nothing
    assert reply.status == 408
    with client(limited, "key-a") as http:
        assert small_chat(http).status_code == 200


def test_while_triton_is_down_inference_is_503_with_retry_after_and_health_stays_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there
    log = tmp_path_factory.mktemp("down") / "gateway.log"
    with (
        GatewayProcess(f"127.0.0.1:{port}", log, "--triton-timeout", "5") as down,
        httpx.Client(base_url=down.url, timeout=60) as http,
    ):
        assert http.get("/health").json() == {"status": "ok"}
        ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready" and "retry-after" in ready.headers
        for reply in (small_chat(http), http.post("/v1/embeddings", json={"model": "clip", "input": "x"})):
            assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
            assert reply.json()["error"]["code"] == "server_unavailable"
            assert str(port) not in reply.json()["error"]["message"]  # no internal address leaks out
        sdk = openai.OpenAI(base_url=f"{down.url}/v1", api_key="none", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            sdk.embeddings.create(model="clip", input="x")
        assert down.alive


def test_a_separate_metrics_port_serves_prometheus_without_a_key(
    server: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    log = tmp_path_factory.mktemp("metrics") / "gateway.log"
    with GatewayProcess(server.grpc_url, log, "--metrics-port", str(port), api_keys="key-m") as running:
        with httpx.Client(base_url=running.url) as anonymous:
            assert anonymous.get("/metrics").status_code == 401
            assert anonymous.get("/health").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200
    assert 'vlm_gateway_requests_total{method="GET",route="/health",status="200"} 2.0' in scraped.text  # + startup
    assert 'vlm_gateway_rejected_requests_total{reason="unauthorized"} 1.0' in scraped.text
