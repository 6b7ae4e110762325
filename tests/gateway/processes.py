"""A real ``vlm-gateway`` process on a free loopback port, and a small HTTP server of test images to fetch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from serving.launcher import free_port

VLM_GATEWAY = Path(sys.executable).with_name("vlm-gateway")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class GatewayProcess:
    """``with GatewayProcess(triton_url, log, "--flag", ...) as gateway:`` starts ``vlm-gateway`` and waits for
    ``/health``; ``gateway.url`` is its base URL."""

    def __init__(self, triton_url: str, log_file: Path, *args: str, api_keys: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [str(VLM_GATEWAY), "--triton-url", triton_url, "--port", str(self.port), *args]
        self.env = {**os.environ, "VLM_GATEWAY_API_KEYS": api_keys}
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GatewayProcess:
        log = self.log_file.open("wb")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vlm-gateway exited with {self.process.returncode}: {self.log_file.read_text()}")
            with contextlib.suppress(OSError), _DIRECT.open(f"{self.url}/health", timeout=2) as response:
                if response.status == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"vlm-gateway did not answer /health within 60 s: {self.log_file.read_text()}")
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


class ImageServer:
    """Serves ``routes`` (path -> (status, headers, body)) on 127.0.0.1; ``/slow`` answers after 30 s."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path == "/slow":
                    time.sleep(30)
                status, headers, body = server.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> ImageServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
