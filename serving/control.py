"""The operator's key for Triton's control APIs, and the control calls the project makes with it.

Triton answers the model-repository (index, load, unload), shared-memory, trace and logging APIs only to
callers that send the key (``--http-restricted-api`` / ``--grpc-restricted-protocol``): with explicit model
control, an open load API is remote code execution (a load request can carry a ``model.py``). Health,
metadata, model config, statistics and inference stay open for tritonclient, perf_analyzer and genai-perf.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import urllib.error
import urllib.request
from pathlib import Path

CONTROL_KEY_HEADER = "x-vlm-control-key"  # the HTTP header that carries the key
GRPC_CONTROL_KEY_HEADER = "triton-grpc-protocol-" + CONTROL_KEY_HEADER  # gRPC metadata: Triton adds this prefix
RESTRICTED_APIS = ("model-repository", "shared-memory", "trace", "logging")
OPEN_APIS = ("health", "metadata", "inference", "model-config", "statistics")
_KEY_FORMAT = re.compile(r"[A-Za-z0-9._~-]{16,256}")  # Triton splits its flag on ':' and '='
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through $http_proxy


class ControlError(RuntimeError):
    """A control call failed; the message says which call and what the server answered."""


def generate_control_key() -> str:
    return secrets.token_hex(24)


def check_control_key(key: str) -> str:
    if not _KEY_FORMAT.fullmatch(key):
        raise ValueError("the control key must be 16 to 256 characters of letters, digits and . _ ~ -")
    return key


def read_or_create_control_key(path: Path) -> str:
    """The key in ``path``; a new one written there (mode 0600) when the file does not exist yet."""
    if path.exists():
        return check_control_key(path.read_text().strip())
    key = generate_control_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def restriction_flags(key: str) -> list[str]:
    """tritonserver flags that put the control APIs behind ``key`` on both protocols."""
    rule = f"{','.join(RESTRICTED_APIS)}:{CONTROL_KEY_HEADER}={check_control_key(key)}"
    return [f"--http-restricted-api={rule}", f"--grpc-restricted-protocol={rule}"]


class ControlClient:
    """The control calls over Triton's HTTP API, with the key."""

    def __init__(self, http_url: str, key: str, timeout_s: float = 5.0) -> None:
        self.base = f"http://{http_url}"
        self.key = key
        self.timeout_s = timeout_s

    def _post(self, path: str, timeout_s: float | None = None) -> bytes:
        request = urllib.request.Request(
            self.base + path, method="POST", data=b"{}", headers={CONTROL_KEY_HEADER: self.key}
        )
        try:
            with _DIRECT.open(request, timeout=timeout_s or self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise ControlError(f"{path} answered HTTP {error.code}: {_message(error.read())}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise ControlError(f"{path} did not answer: {getattr(error, 'reason', error)}") from None

    def index(self) -> list[dict]:
        """Every model of the repository with its state (``READY``, ``LOADING``, ``UNAVAILABLE``, ...)."""
        return json.loads(self._post("/v2/repository/index"))

    def states(self) -> dict[str, str]:
        return {entry["name"]: entry.get("state", "") for entry in self.index()}

    def unload(self, model: str) -> None:
        self._post(f"/v2/repository/models/{model}/unload")

    def load(self, model: str, timeout_s: float) -> None:
        """Returns once the model (and the ensembles that use it) is loaded, or raises."""
        self._post(f"/v2/repository/models/{model}/load", timeout_s=timeout_s)


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except ValueError:
        return body.decode(errors="replace")[:200]
