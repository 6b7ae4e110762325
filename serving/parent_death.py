"""Tie a process's life to its parent's with Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``).

The kernel sends the signal when the *thread* that started the process exits, not only the whole parent: a child
started from a short-lived thread would be killed with that thread. Elsewhere than Linux these are no-ops.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: signal.Signals) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        return int(ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))) == 0
    return False


def die_with_multiprocessing_parent() -> None:
    """In a process that ``multiprocessing`` started: SIGKILL when the parent dies, and death now if it already has.

    vLLM's engine core starts its workers with the plain interpreter, so a parent-death signal armed only for the
    engine core (``orphan_proof_executable``) never reaches them, and vLLM's own death pipe needs a worker that
    still runs Python to notice it. SIGKILL because a stuck process cannot handle anything else. Nothing happens
    in a process that ``multiprocessing`` did not start (the decoder's stub, whose parent is tritonserver).
    """
    parent = multiprocessing.parent_process()
    if parent is None or not set_parent_death_signal(signal.SIGKILL):
        return
    # The parent may have died before the signal was armed (a spawned child runs seconds of imports first): then
    # nothing would ever send it, so this process goes as the signal would have taken it. An orphan has a new
    # parent pid (the parent's sentinel is not used: it also reads closed when the parent merely drops its handle).
    if os.getppid() != parent.pid:
        os.kill(os.getpid(), signal.SIGKILL)
