"""The series the Triton HPA scales on exist on a real tritonserver under load, with the labels the
prometheus-adapter rule selects on (deploy/k8s/base/prometheus-adapter-rules.yaml), and they move with load."""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import yaml

from client import VLMClient
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.test_llava_bad_input import IMAGE_TURN
from tests.unit.test_k8s import K8S, adapter_series

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$")


def scrape(server: TritonServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if match := _SAMPLE.match(line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            series.setdefault(match.group(1), []).append((labels, float(match.group(3))))
    return series


def load(server: TritonServer, count: int) -> None:
    def one(n: int) -> None:
        with VLMClient(server.grpc_url) as client:
            client.embed_images([encode(scene(seed=5_000 + n))])
            if n % 4 == 0:
                client.generate(IMAGE_TURN, [encode(scene(seed=6_000 + n))], max_tokens=4)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def test_the_series_the_queue_autoscaler_reads_exist_with_the_rules_labels_and_grow_under_load(
    server: TritonServer,
) -> None:
    rules = yaml.safe_load((K8S / "base" / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = rules["rules"]
    wanted = adapter_series(rule)
    before = scrape(server)
    load(server, 32)
    after = scrape(server)
    for name, labels in wanted.items():
        assert after.get(name), f"{name} is not on Triton's metrics endpoint"
        for sample_labels, _ in after[name]:
            assert labels <= set(sample_labels), f"{name} lacks the labels {labels - set(sample_labels)}"

        def total(series: dict, name: str = name) -> float:
            return sum(value for _, value in series.get(name, []))

        assert total(after) > total(before), f"{name} did not move under load"
    image_models = {labels["model"] for labels, value in after["nv_inference_request_success"] if value > 0}
    assert {"clip_image_embed", "clip_preprocess", "llava"} <= image_models
