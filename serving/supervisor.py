"""Keep a tritonserver serving: restart it when it dies, reload a model whose python stub died.

tritonserver 2.51 neither restarts itself (one deeply nested HTTP JSON body kills the whole process) nor
replaces a python stub that was killed (the model stays READY while its requests fail). The supervisor
polls both. A dead server is restarted on the same ports after a bounded, growing back-off. A model with a
dead stub is unloaded and loaded again; Triton reports it (and the server, and the ensembles using it) not
ready until the load is done. Models the operator unloaded on purpose are left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving.control import ControlError
from serving.launcher import ServerError, TritonServer

RELOAD_RETRY_S = 5.0


@dataclass
class Backoff:
    """Seconds to wait before restart k: ``initial_s * 2**k``, at most ``max_s``; back to ``initial_s`` once a
    run has lasted ``reset_after_s``."""

    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0
    failures: int = 0

    def next_delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.reset_after_s:
            self.failures = 0
        delay = min(self.max_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return delay


class Supervisor:
    """``Supervisor(server, stop, say).run()`` until ``stop`` is set; ``server`` must have been started."""

    def __init__(
        self,
        server: TritonServer,
        stop: threading.Event,
        say: Callable[[str], None],
        poll_s: float = 0.25,
        backoff: Backoff | None = None,
    ) -> None:
        self.server = server
        self.stop = stop
        self.say = say
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.reload_timeout_s = server.options.startup_timeout_s  # as long as a load may take at start-up
        self.started_at = time.monotonic()
        self.retry_at: dict[str, float] = {}  # model -> when to try reloading it again
        self.dead: set[str] = set()  # models whose stub died, seen by the look after a reload

    def run(self) -> None:
        while not self.stop.wait(self.poll_s):
            if not self.server.running:
                self._restart_server()
            else:
                self._check_stubs()

    # -- the server process --------------------------------------------------------------------

    def _restart_server(self) -> None:
        code = self.server.process.poll() if self.server.process else None
        self.say(f"tritonserver exited (code {code}); last log lines:\n{self.server.log_tail(10)}")
        self.server.stop()  # reaps it, kills the stubs it left behind, removes the scratch backends
        while not self.stop.is_set():
            delay = self.backoff.next_delay(time.monotonic() - self.started_at)
            self.say(f"restarting tritonserver in {delay:g} s")
            if self.stop.wait(delay):
                return
            self.started_at = time.monotonic()
            try:
                self.server.start(cancel=self.stop, append_log=True)
            except ServerError as error:
                self.say(f"restart failed: {error}")
                self.server.stop()
                continue
            self.retry_at.clear()
            self.dead.clear()
            self.say("tritonserver is serving again")
            return

    # -- python stubs --------------------------------------------------------------------------

    def _check_stubs(self) -> None:
        dead, self.dead = self.dead | self.server.watch_stubs(), set()
        for model in sorted(dead):
            self._reload(model, first_try=True)
        now = time.monotonic()
        for model, due in sorted(self.retry_at.items()):
            if due <= now:
                self._reload(model, first_try=False)

    def _reload(self, model: str, first_try: bool) -> None:
        """Unload ``model`` if it is READY, then load it; a failed try is made again every ``RELOAD_RETRY_S``,
        and a load that does not finish within the start-up timeout restarts the whole server.

        The unload is what replaces the dead stub (and makes readiness false meanwhile): Triton 2.51 answers a
        load of a READY model whose files did not change at once, and leaves the dead stub in place."""
        control = self.server.control
        started = time.monotonic()
        try:
            state = control.states().get(model)
            if first_try:
                if state != "READY":  # unloaded, or being reloaded, on purpose
                    return
                self.say(f"the python stub of {model} died; reloading {model} (not ready until it is loaded)")
            if state == "READY":
                control.unload(model)
            control.load(model, timeout_s=self.reload_timeout_s)
        except ControlError as error:
            if self.server.running and time.monotonic() - started >= self.reload_timeout_s:
                self.say(f"reloading {model} took over {self.reload_timeout_s:g} s; restarting tritonserver")
                self.server.kill()
                return
            if self.server.running:  # a dead server is restarted on the next poll, which reloads everything
                self.say(f"reloading {model} failed, trying again in {RELOAD_RETRY_S:g} s: {error}")
                self.retry_at[model] = time.monotonic() + RELOAD_RETRY_S
            return
        self.retry_at.pop(model, None)
        self.say(f"{model} is ready again after {time.monotonic() - started:.1f} s")
        # List the new instances now: one killed before the next poll's look must not go unseen.
        self.dead |= self.server.watch_stubs(reloaded=model)
