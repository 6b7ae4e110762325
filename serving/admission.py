"""The chat ensemble's door. Its decoder admits at most ``max_num_seqs + max_waiting_requests`` streams, but it sees
a request only after the preprocess step and the encoders have worked on it (bench-llava on 2 cores: 14-200 ms, so
a burst's refusals came back in 78 ms p99). So the decoder publishes how many streams it holds, and the ensemble's
first step refuses while the decoder is past its door mark, before it reads any input.

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
from pathlib import Path

from serving.stubs import is_running

# The entry step's config parameter naming the decoder whose door it keeps (export/admission.py writes it).
ADMISSION_DECODER_PARAMETER = "admission_decoder"
_FOLDER = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
_PREFIX = "triton-vlm-admission"
_LAYOUT = struct.Struct("<iii")  # decoder pid, streams held, door mark


def page_path(server_pid: int, decoder: str) -> Path:
    return _FOLDER / f"{_PREFIX}-{server_pid}-{re.sub(r'[^A-Za-z0-9_.-]', '_', decoder)}"


def door_mark(max_num_seqs: int, max_waiting_requests: int) -> int:
    """Streams held at which the door closes: every running slot and half the waiting list."""
    return max_num_seqs + (max_waiting_requests + 1) // 2


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
