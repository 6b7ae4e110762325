"""Two tritonserver replicas behind one gateway (``--triton-url ipv4:127.0.0.1:P,127.0.0.2:P``): gRPC's
round_robin spreads the requests over both; killing one under load loses no request that had not started
streaming (the gateway retries those once on the other); the replica that comes back gets traffic again."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient

from client import ModelNames
from gateway.process import GatewayProcess
from serving.cli import served_entry_models
from serving.launcher import ServerOptions, TritonServer, free_port, port_is_free
from tests.gateway.conftest import data_url
from tests.images import encode, scene
from tests.server.serve_process import wait_for
from tests.server.statistics import metric_total

pytestmark = [pytest.mark.long, pytest.mark.timeout(900)]
MODELS = ModelNames()
HOSTS = ("127.0.0.1", "127.0.0.2")


def shared_grpc_port() -> int:
    """A port free on both loopback addresses: the replicas differ by address only, as pods do."""
    for _ in range(50):
        port = free_port(HOSTS[0])
        if all(port_is_free(host, port) for host in HOSTS):
            return port
    raise RuntimeError("no port free on both loopback addresses")


@pytest.fixture(scope="module")
def replicas(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[TritonServer]]:
    logs, port = tmp_path_factory.mktemp("replicas"), shared_grpc_port()
    # Only the checkpoints these tests call: llava_next would add a vLLM engine (~2 GB) to each replica.
    models = served_entry_models(model_repository, (), ("clip", "llava"))
    servers = [
        TritonServer(
            ServerOptions(
                repository=model_repository,
                host=host,
                http_port=0,
                grpc_port=port,
                metrics_port=0,
                log_file=logs / f"replica-{index}.log",
                exit_timeout_s=2,
                models=models,
            )
        )
        for index, host in enumerate(HOSTS)
    ]
    try:
        for server in servers:  # from this thread: a server dies with the thread that started it (PDEATHSIG)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def gateway_http(replicas: list[TritonServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    target = "ipv4:" + ",".join(server.grpc_url for server in replicas)
    log = tmp_path_factory.mktemp("replicas-gateway") / "gateway.log"
    with (
        GatewayProcess(target, log, "--max-concurrency-per-key", "64") as gateway,
        httpx.Client(base_url=gateway.url, timeout=120) as http,
    ):
        yield http


def successes(server: TritonServer, model: str) -> int:
    """Inferences of ``model`` that succeeded on this replica (Triton's own statistics)."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(stats["inference_stats"]["success"].get("count", 0))


def embed(http: httpx.Client) -> httpx.Response:
    return http.post("/v1/embeddings", json={"model": "clip", "input": [f"a red circle {uuid.uuid4().hex}"]})


def chat(max_tokens: int, seed: int, stream: bool) -> dict:
    image = data_url(encode(scene(seed=seed)))  # a fresh scene each time: the encoders' cache never answers
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "describe the image."}]
    return {
        "model": "llava",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


@dataclass
class StreamOutcome:
    finished: bool  # the choice's finish_reason and [DONE] came, no error event
    had_content: bool  # a content delta reached the caller before the end


def stream_chat(http: httpx.Client, body: dict) -> StreamOutcome:
    had_content = finished = errored = False
    try:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return StreamOutcome(False, False)
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    finished = not errored
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    errored = True
                    continue
                had_content = had_content or any(c["delta"].get("content") for c in chunk["choices"])
    except httpx.HTTPError:
        pass
    return StreamOutcome(finished, had_content)


def replica_retries(http: httpx.Client) -> float:
    metrics = http.get("/metrics").text
    (line,) = [line for line in metrics.splitlines() if line.startswith("vlm_gateway_replica_retries_total ")]
    return float(line.split()[1])


def share(counts: list[int]) -> list[float]:
    return [count / sum(counts) for count in counts]


def test_round_robin_spreads_clip_and_llava_requests_over_both_replicas(
    replicas: list[TritonServer], gateway_http: httpx.Client
) -> None:
    before = {model: [successes(r, model) for r in replicas] for model in (MODELS.text_embed, MODELS.llava)}
    with ThreadPoolExecutor(8) as pool:
        embeddings = list(pool.map(lambda _: embed(gateway_http).status_code, range(200)))
        bodies = [chat(max_tokens=4, seed=500 + i, stream=False) for i in range(20)]
        chats = list(pool.map(lambda body: gateway_http.post("/v1/chat/completions", json=body).status_code, bodies))
    assert embeddings == [200] * 200 and chats == [200] * 20
    for model, sent in ((MODELS.text_embed, 200), (MODELS.llava, 20)):
        counts = [successes(r, model) - b for r, b in zip(replicas, before[model], strict=True)]
        assert sum(counts) == sent, (model, counts)
        assert min(share(counts)) >= 0.3, (model, counts)


def test_a_replica_killed_under_load_loses_no_request_that_had_not_started_streaming(
    replicas: list[TritonServer], gateway_http: httpx.Client
) -> None:
    victim = replicas[1]
    stop = threading.Event()
    embed_codes: list[int] = []
    streams: list[StreamOutcome] = []

    def embed_loop() -> None:
        while not stop.is_set():
            embed_codes.append(embed(gateway_http).status_code)

    def stream_loop(worker: int) -> None:
        for round_ in range(10_000):
            if stop.is_set():
                return
            streams.append(stream_chat(gateway_http, chat(max_tokens=48, seed=10_000 * worker + round_, stream=True)))

    with ThreadPoolExecutor(10) as pool:
        running = [pool.submit(embed_loop) for _ in range(6)] + [pool.submit(stream_loop, w) for w in range(4)]
        wait_for(lambda: len(embed_codes) >= 40 and len(streams) >= 4, "load runs on both replicas", timeout_s=120)
        # Round robin spreads the load, but not at every instant: kill the victim while a stream runs on it.
        wait_for(
            lambda: metric_total(victim, "vlm_decoder_active_sequences") > 0,
            "a stream runs on the victim",
            timeout_s=60,
        )
        victim_before = successes(victim, MODELS.text_embed)
        victim.kill()  # SIGKILL, as the OOM killer or a node loss would: every connection to it breaks at once
        killed_at = (len(embed_codes), len(streams))
        wait_for(
            lambda: len(embed_codes) >= killed_at[0] + 60 and len(streams) >= killed_at[1] + 8,
            "load goes on after the kill",
            timeout_s=180,
        )
        stop.set()
        for future in running:
            future.result()
    assert victim_before > 0  # the victim was serving when it died
    assert replica_retries(gateway_http) >= 1  # requests that were on it when it died, sent on to the survivor
    assert embed_codes == [200] * len(embed_codes)  # unary requests: the ones that were on the victim were retried
    lost = [outcome for outcome in streams if not outcome.finished and not outcome.had_content]
    assert not lost, f"{len(lost)} of {len(streams)} streams failed before streaming anything"
    cut = [outcome for outcome in streams if not outcome.finished]
    assert len(cut) <= 4  # at most the streams that were running on the victim (one per stream worker)


def test_the_replica_that_comes_back_receives_traffic_again(
    replicas: list[TritonServer], gateway_http: httpx.Client
) -> None:
    victim = replicas[1]
    victim.stop()  # reaps the stubs its killed process left
    victim.start(append_log=True)  # the same address and ports
    assert embed(gateway_http).status_code == 200
    wait_for(  # the channel reconnects within its 5 s back-off ceiling
        lambda: embed(gateway_http).status_code == 200 and successes(victim, MODELS.text_embed) > 0,
        "the restarted replica answers a request",
        timeout_s=30,
    )
    before = [successes(r, MODELS.text_embed) for r in replicas]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: embed(gateway_http).status_code, range(40)))
    assert codes == [200] * 40
    counts = [successes(r, MODELS.text_embed) - b for r, b in zip(replicas, before, strict=True)]
    assert min(share(counts)) >= 0.3, counts
