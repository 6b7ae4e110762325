"""serving/queue_watch.py and the gate that reads it (serving/admission.py), against a metrics endpoint served over
real HTTP: queued requests weighed by the items the door's recent requests carried, the steps before a step counted
toward it, a reading reused for ``REFRESH_S``, and a failed read leaving the door open until ``RETRY_AFTER_S``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving.admission import ITEMS_WINDOW_S, Gate, Step
from serving.queue_watch import REFRESH_S, RETRY_AFTER_S, QueueWatch, model_metrics

pytestmark = pytest.mark.timeout(30)


def exposition(queued: dict[str, int]) -> str:
    lines = ["# HELP nv_inference_pending_request_count Instantaneous number of pending requests"]
    lines += [f'nv_inference_pending_request_count{{model="{model}",version="1"}} {n}' for model, n in queued.items()]
    lines += [f'nv_inference_count{{model="{model}",version="1"}} 1000' for model in queued]  # served: not read
    return "\n".join(lines) + "\n"


class Metrics:
    """A metrics endpoint whose text a test sets; ``status`` other than 200 answers an error."""

    def __init__(self) -> None:
        self.text = exposition({})
        self.status = 200
        self.reads = 0
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                metrics.reads += 1
                body = metrics.text.encode()
                self.send_response(metrics.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    served = Metrics()
    yield served
    served.server.shutdown()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_model_metrics_sum_versions_and_skip_other_metrics() -> None:
    text = exposition({"vision": 3}) + 'nv_inference_pending_request_count{model="vision",version="2"} 1\n'
    found = model_metrics(text, ("nv_inference_pending_request_count",))
    assert found == {"nv_inference_pending_request_count": {"vision": 4.0}}


VISION = {"preprocess": Step(), "vision": Step(("preprocess",), 16, batches=True, items=("image",))}


def test_queued_requests_weigh_the_images_the_doors_recent_requests_carried(metrics: Metrics) -> None:
    clock = Clock()
    gate = Gate(VISION, None, QueueWatch(metrics.url, clock), clock)
    metrics.text = exposition({"vision": 3})
    assert gate.refusal({"image": 4}) is None  # 3 requests of 4 images: 12 headed to the tower
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"vision": 4})
    refusal = gate.refusal({"image": 4})
    assert refusal is not None and "vision has 16 items" in refusal
    clock.now += 2 * REFRESH_S
    assert gate.refusal({"image": 1}) is None  # (4 + 1) / 2 images a request: 10
    clock.now += 2 * REFRESH_S
    assert gate.refusal({}) is None  # no image: weighed as one, (4 + 1 + 1) / 3 a request


def test_after_an_idle_spell_only_the_request_at_the_door_counts(metrics: Metrics) -> None:
    clock = Clock()
    gate = Gate(VISION, None, QueueWatch(metrics.url, clock), clock)
    metrics.text = exposition({"vision": 0})
    for _ in range(10):  # a flood of 32-image requests, all admitted
        assert gate.refusal({"image": 32}) is None
        clock.now += 2 * REFRESH_S
    metrics.text = exposition({"vision": 8})
    assert gate.refusal({"image": 1}) is not None  # 8 requests weigh (320 + 1) / 11 images each
    clock.now += ITEMS_WINDOW_S + 2 * REFRESH_S  # then nothing for a window, and a request of one image
    assert gate.refusal({"image": 1}) is None
    clock.now += 60 + 2 * REFRESH_S  # nothing for a minute; a burst's first request carries four images
    metrics.text = exposition({"vision": 4})
    assert gate.refusal({"image": 4}) is not None


def test_a_step_that_no_counted_input_feeds_weighs_a_request_as_one_item(metrics: Metrics) -> None:
    clock = Clock()
    steps = {"preprocess": Step(), "vision": Step(("preprocess",), 16, batches=True)}
    gate = Gate(steps, None, QueueWatch(metrics.url, clock), clock)
    assert gate.counted == frozenset()
    metrics.text = exposition({"vision": 15})
    assert gate.refusal({"image": 4}) is None
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"vision": 16})
    assert gate.refusal({"image": 4}) is not None


def test_a_reading_is_reused_for_the_refresh_interval(metrics: Metrics) -> None:
    clock = Clock()
    watch = QueueWatch(metrics.url, clock)
    watch.reading()
    clock.now += REFRESH_S / 2
    watch.reading()
    assert metrics.reads == 1
    clock.now += 2 * REFRESH_S
    watch.reading()
    assert metrics.reads == 2


def test_no_endpoint_or_a_failing_one_leaves_the_door_open_until_a_retry(metrics: Metrics) -> None:
    assert QueueWatch(None).reading() is None
    clock = Clock()
    watch = QueueWatch(metrics.url, clock)
    metrics.status = 500
    assert watch.reading() is None
    metrics.status = 200
    clock.now += RETRY_AFTER_S / 2
    assert watch.reading() is None and metrics.reads == 1  # not asked again yet
    clock.now += RETRY_AFTER_S
    assert watch.reading() is not None
    closed = QueueWatch("http://127.0.0.1:9/metrics", clock)  # nothing listens there
    assert closed.reading() is None


def test_the_gate_closes_at_the_mark_counting_the_steps_before_it(metrics: Metrics) -> None:
    clock = Clock()
    gate = Gate(VISION, None, QueueWatch(metrics.url, clock), clock)
    metrics.text = exposition({"vision": 2, "preprocess": 1})
    assert gate.refusal({"image": 4}) is None  # 12 images headed to it
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"vision": 2, "preprocess": 2})
    refusal = gate.refusal({"image": 4})
    assert refusal is not None and "vision" in refusal and "16" in refusal
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"vision": 2, "preprocess": 0})
    assert gate.refusal({"image": 4}) is None  # 8


def test_parallel_branches_to_a_batching_step_count_their_busiest_path_not_their_sum(metrics: Metrics) -> None:
    clock = Clock()
    steps = {
        "tokenize": Step(),
        "text": Step(("tokenize",)),
        "vision": Step(),
        "fuse": Step(("text", "vision"), 4, True),
    }
    gate = Gate(steps, None, QueueWatch(metrics.url, clock))
    metrics.text = exposition({"text": 3, "vision": 3})  # the same three requests in both towers' queues
    assert gate.refusal({}) is None
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"tokenize": 1, "text": 3, "vision": 3})
    assert gate.refusal({}) is not None


def test_a_step_taking_one_request_at_a_time_counts_only_its_own_queue(metrics: Metrics) -> None:
    clock = Clock()
    gate = Gate({"tokenize": Step(), "score": Step(("tokenize",), 2)}, None, QueueWatch(metrics.url, clock))
    metrics.text = exposition({"tokenize": 8, "score": 1})
    assert gate.refusal({}) is None
    clock.now += 2 * REFRESH_S
    metrics.text = exposition({"tokenize": 0, "score": 2})
    assert gate.refusal({}) is not None


def test_in_the_background_a_thread_reads_when_asked_and_never_while_idle(metrics: Metrics) -> None:
    metrics.text = exposition({"vision": 3})
    watch = QueueWatch(metrics.url, background=True)
    assert watch.reading() is None  # the first ask wakes the reader; the request does not wait for it
    deadline = time.monotonic() + 5
    while (reading := watch.reading()) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert reading is not None and reading == {"vision": 3.0}
    time.sleep(3 * REFRESH_S)  # a read already asked for may still come
    reads = metrics.reads
    time.sleep(10 * REFRESH_S)
    assert metrics.reads == reads  # nobody asked
