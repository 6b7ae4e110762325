"""How much work each model of the server holds in its queue, read from the server's own metrics endpoint. The
admission step reads it to refuse a request at the ensemble's entry when a later step's queue is past its mark,
instead of after the earlier steps worked on it (serving/triton_models/admission_step.py).

Triton counts each model's queue in requests (``nv_inference_pending_request_count``); the door weighs them by the
items its own requests carry (serving/admission.py), since the server's counters tell a model's items per request
only of requests it has served, and the door's question is about the ones on their way.

The launcher names the endpoint in the server's environment (``METRICS_URL_ENVIRONMENT``), which every python stub
inherits. Without it, or while the endpoint does not answer, nothing is known and the door stays open: each queue
then refuses for itself, later."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

METRICS_URL_ENVIRONMENT = "TRITON_VLM_METRICS_URL"
PENDING_METRIC = "nv_inference_pending_request_count"
# A reading is reused for this long: a burst of hundreds of requests a second costs at most 50 reads (about 0.5 ms
# each on 2 cores), and in 20 ms at most a few requests pass a door that has just closed.
REFRESH_S = 0.02
READ_TIMEOUT_S = 0.1  # the door must not wait on a server too busy to answer its metrics
RETRY_AFTER_S = 1.0  # after a failed read the door stays open this long before it reads again
STALE_S = 0.5  # a reading older than this (its reader stuck or failing) says nothing: the door stays open
_MODEL_LABEL = re.compile(r'model="([^"]*)"')


def model_metrics(metrics_text: str, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Metric -> model -> its value (summed over versions), for each of ``metrics``, in one pass over a Prometheus
    text exposition."""
    found: dict[str, dict[str, float]] = {metric: {} for metric in metrics}
    for line in metrics_text.splitlines():
        name, brace, rest = line.partition("{")
        if not brace or name not in found:
            continue
        labels, _, value = rest.rpartition(" ")
        if match := _MODEL_LABEL.search(labels):
            values = found[name]
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(value)
    return found


class QueueWatch:
    """``reading()``: each model's queued requests as last read (at most ``REFRESH_S`` ago while asked for); None
    while none can be had. With ``background`` a thread of its own reads the endpoint, woken by the requests that
    ask, so no request waits for a read (a metrics read took tens of milliseconds on a busy 2-core server, the
    door's whole budget); it reads nothing while none asks."""

    def __init__(
        self, metrics_url: str | None, clock: Callable[[], float] = time.monotonic, background: bool = False
    ) -> None:
        self.clock = clock
        self.address = urlsplit(metrics_url) if metrics_url else None
        self.connection: http.client.HTTPConnection | None = None
        self.last: dict[str, float] | None = None
        self.read_at = -float("inf")
        self.failed_at = -float("inf")
        self.wanted: threading.Event | None = None
        if background and self.address is not None:
            self.wanted = threading.Event()
            threading.Thread(target=self._read_when_asked, name="queue-watch", daemon=True).start()

    def reading(self) -> dict[str, float] | None:
        now = self.clock()
        if self.address is None:
            return None
        if self.wanted is not None:
            self.wanted.set()
            last, read_at = self.last, self.read_at
            return last if now - read_at < STALE_S else None
        if now - self.failed_at >= RETRY_AFTER_S and now - self.read_at >= REFRESH_S:
            self._refresh(now)
        return self.last

    def _read_when_asked(self) -> None:
        assert self.wanted is not None
        while True:
            self.wanted.wait()
            self.wanted.clear()
            failed = not self._refresh(self.clock())
            time.sleep(RETRY_AFTER_S if failed else REFRESH_S)  # at most one read an interval

    def _refresh(self, now: float) -> bool:
        try:
            text = self._read()
        except (OSError, http.client.HTTPException, ValueError):
            self._drop_connection()
            self.last, self.failed_at = None, now
            return False
        self.last = model_metrics(text, (PENDING_METRIC,))[PENDING_METRIC]
        self.read_at = now
        return True

    def _read(self) -> str:
        assert self.address is not None
        if self.connection is None:  # kept open: a read is then one request on a warm socket
            self.connection = http.client.HTTPConnection(
                self.address.hostname or "127.0.0.1", self.address.port, timeout=READ_TIMEOUT_S
            )
        self.connection.request("GET", self.address.path or "/metrics")
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"metrics answered {response.status}")
        return body.decode()

    def _drop_connection(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
