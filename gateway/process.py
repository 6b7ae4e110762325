"""``vlm-gateway`` as a child process on a free loopback port: what the tests, ``vlm-bench --through-gateway``
and the demo start in front of their tritonserver."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VLM_GATEWAY = Path(sys.executable).with_name("vlm-gateway")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through $http_proxy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """``with GatewayProcess(triton_url, log, "--flag", ...) as gateway:`` starts ``vlm-gateway`` and waits until
    ``ready_path`` answers 200 (``/health``: the process is up; ``/ready``: Triton's models answer too);
    ``gateway.url`` is its base URL. Auth is on only with ``api_keys`` (comma-separated)."""

    def __init__(
        self,
        triton_url: str,
        log_file: Path,
        *args: str,
        api_keys: str = "",
        ready_path: str = "/health",
        timeout_s: float = 60,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [str(VLM_GATEWAY), "--triton-url", triton_url, "--port", str(self.port), *args]
        self.env = {**os.environ, "VLM_GATEWAY_API_KEYS": api_keys}
        self.log_file = log_file
        self.ready_path = ready_path
        self.timeout_s = timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GatewayProcess:
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vlm-gateway exited with {self.process.returncode}:\n{self.log()[-2000:]}")
            with contextlib.suppress(OSError), _DIRECT.open(self.url + self.ready_path, timeout=5) as response:
                if response.status == 200:
                    return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    f"vlm-gateway did not answer {self.ready_path} in {self.timeout_s:g} s:\n{self.log()[-2000:]}"
                )
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")
