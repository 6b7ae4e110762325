"""The ensembles' doors. Every ensemble a client calls opens with an admission step (one python model per
checkpoint, serving/triton_models/admission_step.py) that every other step waits for: it refuses a request before
any step reads it when a later step would refuse it anyway, since on a busy server a refusal that comes after the
preprocess steps and encoders waited and worked for it takes as long as they do (CLIP ViT-B/32 in a 10x burst on 2
cores: 0.9-11 s, and the preprocessing of requests refused later took the cores from the vision tower). Two marks:

- A step with a bounded queue (Triton's ``max_queue_size``) is past its mark when half its queue is taken
  (``queue_mark``), counting for a batching step the requests queued in the steps before it. The other half is for
  requests between queues (in a step's instances) and arrivals between two readings; counting the requests admitted
  since a reading refused cheap ones that had long left (800 bad rank requests from 8 clients). Counted in items
  (images, for a vision tower): a batching encoder's queue bounds its work at one full batch behind the one it runs
  (its ``max_queue_size`` is its ``max_batch_size``: export/families/limits.py), and CLIP ViT-B/32 took four-image
  requests 32 deep, four batches of 32 images (7 s on 2 cores), before it refused any. The depths come from the
  server's metrics (serving/queue_watch.py); a request's items are the elements of the ensemble inputs that feed
  the step (its images), and queued requests weigh what this door's requests of the last ``ITEMS_WINDOW_S`` carried,
  the one it decides on included. The server's own counters tell only what a step has served: forgotten after an
  idle spell, a burst's first four-image requests weighed one image each; kept, a step's old traffic weighed
  requests that never reach it (bad images, refused by the preprocess step before the tower).
- A chat ensemble's decoder, below.

The decoder admits at most ``max_num_seqs + max_waiting_requests`` streams, but it sees a request only after the
preprocess step and the encoders have worked on it (bench-llava on 2 cores: 14-200 ms, so a burst's refusals came
back in 78 ms p99). So the decoder publishes how many streams it holds, and the door refuses while the decoder is
past its door mark.

The mark leaves half of the waiting list to the requests already past the door (in the encoders), which would
otherwise be refused late, after their images were decoded and encoded: a door that closed only when the decoder
was full would let every request arriving in the encoders' latency through each time a slot freed.

State: one page in shared memory per server and decoder, named by the server's pid (every python stub is a child of
tritonserver), written by the decoder only: its pid, the streams it holds and its mark. A page whose decoder is dead
(killed; its reload rewrites it) or absent (not started yet) counts as open: the decoder then answers for itself.
The launcher removes the server's pages when the server is gone (``remove_pages``).
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.queue_watch import QueueWatch
from serving.stubs import is_running

# The admission step's config parameter: JSON, its output for each ensemble -> that ensemble's marks
# (export/admission.py writes it; ``Gate.from_plan`` reads it).
ADMISSION_PARAMETER = "admission"
# The optional input by which a step waits for another's output (here the admission step's ticket) and ignores it.
ORDERING_INPUT = "wait_for"
_FOLDER = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
_PREFIX = "triton-vlm-admission"
_LAYOUT = struct.Struct("<iii")  # decoder pid, streams held, door mark
ITEMS_WINDOW_S = 2.0  # queued requests weigh the items of the requests a door admitted in about this many seconds


def page_path(server_pid: int, decoder: str) -> Path:
    return _FOLDER / f"{_PREFIX}-{server_pid}-{re.sub(r'[^A-Za-z0-9_.-]', '_', decoder)}"


def door_mark(max_num_seqs: int, max_waiting_requests: int) -> int:
    """Streams held at which the door closes: every running slot and half the waiting list."""
    return max_num_seqs + (max_waiting_requests + 1) // 2


def queue_mark(max_queue_size: int) -> int:
    """Queued requests at which the door closes: half the queue."""
    return (max_queue_size + 1) // 2


def remove_pages(server_pid: int) -> None:
    for page in _FOLDER.glob(f"{_PREFIX}-{server_pid}-*"):
        page.unlink(missing_ok=True)


class AdmissionBoard:
    """The decoder's side: ``publish(held)`` after every admission and release."""

    def __init__(self, decoder: str, mark: int) -> None:
        self.path = page_path(os.getppid(), decoder)
        self.mark = mark
        self.page: mmap.mmap | None = None
        self.error: str | None = None  # why there is no page: the decoder then refuses for itself, later
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.ftruncate(descriptor, mmap.PAGESIZE)
                self.page = mmap.mmap(descriptor, mmap.PAGESIZE)
            finally:
                os.close(descriptor)
        except OSError as error:
            self.error = f"no admission page in {self.path.parent} ({error.strerror}): the door stays open"
        self.publish(0)

    def publish(self, held: int) -> None:
        if self.page is not None:
            _LAYOUT.pack_into(self.page, 0, os.getpid(), held, self.mark)

    def close(self) -> None:
        """Opens the door and leaves the page: a reloaded decoder writes the same page, which the entry steps keep
        mapped (the launcher removes it with the server)."""
        self.publish(0)
        if self.page is not None:
            self.page.close()


class AdmissionDoor:
    """The entry step's side: ``closed()`` is cheap (a read of the page; past the mark, the decoder's /proc entry)."""

    def __init__(self, decoder: str) -> None:
        self.decoder = decoder
        self.path = page_path(os.getppid(), decoder)
        self.page: mmap.mmap | None = None

    def _open(self) -> mmap.mmap | None:
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None  # the decoder has not started yet, or could not make its page
        try:
            return mmap.mmap(descriptor, mmap.PAGESIZE, prot=mmap.PROT_READ)
        finally:
            os.close(descriptor)

    def closed(self) -> bool:
        self.page = self.page or self._open()
        if self.page is None:
            return False
        pid, held, mark = _LAYOUT.unpack_from(self.page, 0)
        return held >= mark > 0 and is_running(pid)

    def reason(self) -> str:
        return f"{self.decoder} holds as many requests as it admits"


@dataclass(frozen=True)
class Step:
    """A step of an ensemble, as its door sees it: the steps whose outputs it reads, its mark in items (None: its
    queue is not bounded), whether it batches and, for a batching step, the ensemble inputs whose elements are its
    items (none: a request is one item). A batching step drains its queue a batch at a time (seconds on a CPU), so
    the requests queued on their way to it count toward its mark; a step that takes one request at a time drains as
    they come (the rank ensemble's scoring step in milliseconds), so only its own queue counts."""

    after: tuple[str, ...] = ()
    mark: int | None = None
    batches: bool = False
    items: tuple[str, ...] = ()


class AdmittedItems:
    """The items per request of the requests a door admitted in the last ``ITEMS_WINDOW_S``. After an idle spell it
    knows only the request it decides on: a flood of 32-image requests does not make a later single image weigh 32,
    and a burst's first four-image request weighs four."""

    def __init__(self) -> None:
        self.recent: deque[tuple[float, int]] = deque()
        self.total = 0

    def per_request(self, now: float, items: int) -> float:
        """With a request of ``items`` items beside the recent ones."""
        while self.recent and now - self.recent[0][0] > ITEMS_WINDOW_S:
            self.total -= self.recent.popleft()[1]
        return (self.total + items) / (len(self.recent) + 1)

    def admit(self, now: float, items: int) -> None:
        self.recent.append((now, items))
        self.total += items


class Gate:
    """One ensemble's door: ``refusal(counts)`` says why a request is refused now, or None to admit it; ``counts``
    are the element counts of the request's ``counted`` inputs."""

    def __init__(
        self,
        steps: Mapping[str, Step],
        decoder: str | None,
        queues: QueueWatch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.steps = dict(steps)
        self.watched = [name for name, step in self.steps.items() if step.mark is not None]
        self.decoder = AdmissionDoor(decoder) if decoder else None
        self.queues = queues
        self.clock = clock
        self.admitted = {step.items: AdmittedItems() for step in self.steps.values() if step.batches and step.items}
        self.counted = frozenset(name for inputs in self.admitted for name in inputs)

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any], queues: QueueWatch) -> Gate:
        """From the admission step's parameter (one ensemble's entry): {"steps": {step: {"after": [steps], "mark":
        items or null, "batches": bool, "items": [inputs]}}, "decoder": decoder or null}."""
        steps = {
            name: Step(tuple(e["after"]), e["mark"], e["batches"], tuple(e["items"]))
            for name, e in plan["steps"].items()
        }
        return cls(steps, plan["decoder"], queues)

    def refusal(self, counts: Mapping[str, int]) -> str | None:
        now = self.clock()
        items = {inputs: max(sum(counts.get(name, 0) for name in inputs), 1) for inputs in self.admitted}
        reason = self._refusal(now, items)
        if reason is None:
            for inputs, admitted in self.admitted.items():
                admitted.admit(now, items[inputs])
        return reason

    def _refusal(self, now: float, items: dict[tuple[str, ...], int]) -> str | None:
        if self.decoder is not None and self.decoder.closed():
            return self.decoder.reason()
        queued = self.queues.reading() if self.watched else None
        if queued is None:
            return None
        requests: dict[str, float] = {}
        for name in self.watched:
            step = self.steps[name]
            if step.batches:
                held = self._headed_to(name, queued, requests)
                if step.items:
                    held *= self.admitted[step.items].per_request(now, items[step.items])
            else:
                held = queued.get(name, 0.0)
            if step.mark is not None and held >= step.mark:
                return f"{name} has {held:.0f} items queued for it, half the queue it admits"
        return None

    def _headed_to(self, name: str, queued: Mapping[str, float], found: dict[str, float]) -> float:
        """Requests on their way to a step: in its queue, and on the busiest path of queues before it from the door
        (parallel branches hold the same requests, so the paths are not added)."""
        if name not in found:
            after = self.steps[name].after if name in self.steps else ()
            before = max((self._headed_to(step, queued, found) for step in after), default=0.0)
            found[name] = queued.get(name, 0.0) + before
        return found[name]
