"""``vlm-serve`` run as an operator runs it (a subprocess on free loopback ports), for the tests that break it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

from serving.stubs import Stub, python_stubs

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
BANNER_LINES = 6


class ServeProcess:
    """``with ServeProcess(repository, tmp) as serve:``; ``serve.errors`` collects what vlm-serve says on stderr."""

    def __init__(self, repository: Path, folder: Path, *args: str, startup_timeout_s: float = 240) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.repository = repository
        self.key_file = folder / "control-key"
        self.log_file = folder / "tritonserver.log"
        self.command = [
            sys.executable,
            "-m",
            "serving.cli",
            "--repository",
            str(repository),
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--exit-timeout",
            "5",
            "--log-file",
            str(self.log_file),
            "--control-key-file",
            str(self.key_file),
            *args,
        ]
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.errors: list[str] = []
        self.banner: list[str] = []

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_errors, daemon=True).start()
        reader = threading.Thread(target=self._read_banner, daemon=True)
        reader.start()
        reader.join(self.startup_timeout_s)
        if len(self.banner) < BANNER_LINES:
            self.stop()
            raise RuntimeError(f"vlm-serve did not become ready: {self.banner} {self.errors[-5:]}")
        self.http_url = re.search(r"http://(\S+)", self.banner[1]).group(1)  # type: ignore[union-attr]
        self.grpc_url = self.banner[2].split()[-1]
        return self

    def _read_banner(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while len(self.banner) < BANNER_LINES and (line := self.process.stdout.readline()):
            self.banner.append(line)

    def _read_errors(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip())

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    @property
    def tritonserver(self) -> psutil.Process:
        """The tritonserver process vlm-serve runs now (a restart makes a new one)."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children():
            if child.name() == "tritonserver":
                return child
        raise RuntimeError("vlm-serve runs no tritonserver right now")

    def stubs(self, model: str | None = None) -> list[Stub]:
        """The python stubs of ``model`` (every model's by default) that run now."""
        return [s for s in python_stubs(self.tritonserver.pid).values() if model is None or s.model == model]

    def said(self, text: str) -> bool:
        """Whether a line vlm-serve wrote on stderr so far holds ``text``."""
        return any(text in line for line in self.errors)

    def ready(self) -> bool:
        try:
            with _DIRECT.open(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float,
    interval_s: float = 0.05,
    explain: Callable[[], object] = lambda: "",
) -> float:
    """Seconds until ``condition()`` held; fails the test past ``timeout_s``, with what ``explain()`` says."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < timeout_s, f"timed out after {timeout_s:g} s waiting until {what} {explain()}"
        time.sleep(interval_s)
    return time.monotonic() - started
