"""The control plane is locked: every API that changes the server (or reads its repository) needs the operator's
key, over HTTP and gRPC; the read-only APIs that tritonclient, perf_analyzer and genai-perf use stay open."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from serving.control import CONTROL_KEY_HEADER, GRPC_CONTROL_KEY_HEADER
from serving.launcher import TritonServer
from tests.server.test_bad_input import assert_server_still_serving

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# (method, path, body) of every restricted HTTP endpoint
RESTRICTED_HTTP = [
    ("POST", "/v2/repository/index", {}),
    ("POST", "/v2/repository/models/clip_text/unload", {}),
    ("POST", "/v2/repository/models/clip_text/load", {}),
    ("GET", "/v2/systemsharedmemory/status", None),
    ("POST", "/v2/systemsharedmemory/region/r/register", {"key": "/r", "offset": 0, "byte_size": 64}),
    ("POST", "/v2/systemsharedmemory/region/r/unregister", {}),
    ("GET", "/v2/cudasharedmemory/status", None),
    ("POST", "/v2/cudasharedmemory/region/r/unregister", {}),
    ("GET", "/v2/trace/setting", None),
    ("POST", "/v2/trace/setting", {"trace_level": ["TIMESTAMPS"]}),
    ("GET", "/v2/models/clip_text/trace/setting", None),
    ("GET", "/v2/logging", None),
    ("POST", "/v2/logging", {"log_verbose_level": 1}),
]


def http(server: TritonServer, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, str]:
    headers = {CONTROL_KEY_HEADER: key} if key else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{server.http_url}{path}", data=data, method=method, headers=headers)
    try:
        with _DIRECT.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def evil_model(marker: Path) -> tuple[str, str]:
    """A python model whose initialize() would leave ``marker`` on the server's disk: (config JSON, model.py)."""
    config = json.dumps({"backend": "python", "max_batch_size": 0, "input": [], "output": []})
    source = (
        f"class TritonPythonModel:\n    def initialize(self, args):\n        open({str(marker)!r}, 'w').write('ran')\n"
    )
    return config, source


@pytest.mark.parametrize(("method", "path", "body"), RESTRICTED_HTTP, ids=[f"{m} {p}" for m, p, _ in RESTRICTED_HTTP])
def test_every_restricted_http_api_refuses_a_caller_without_the_key(
    server: TritonServer, method: str, path: str, body: Any
) -> None:
    for key in (None, "wrong-key-0123456789abcdef"):
        status, text = http(server, method, path, body, key)
        assert status == 403, (status, text)
        assert "restricted" in text and server.options.control_key not in text


def test_the_key_opens_the_repository_index(server: TritonServer) -> None:
    status, text = http(server, "POST", "/v2/repository/index", {}, server.options.control_key)
    assert status == 200
    assert {"name": "clip_text", "version": "1", "state": "READY"} in json.loads(text)


def _grpc_calls(client: grpcclient.InferenceServerClient) -> dict[str, Callable[[], Any]]:
    return {
        "repository index": client.get_model_repository_index,
        "load": lambda: client.load_model("clip_text"),
        "unload": lambda: client.unload_model("clip_text"),
        "system shared memory status": client.get_system_shared_memory_status,
        "register system shared memory": lambda: client.register_system_shared_memory("r", "/r", 64),
        "unregister system shared memory": client.unregister_system_shared_memory,
        "cuda shared memory status": client.get_cuda_shared_memory_status,
        "unregister cuda shared memory": client.unregister_cuda_shared_memory,
        "trace settings": client.get_trace_settings,
        "update trace settings": lambda: client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}),
        "log settings": client.get_log_settings,
        "update log settings": lambda: client.update_log_settings({"log_verbose_level": 1}),
    }


def test_every_restricted_grpc_call_refuses_a_caller_without_the_key(server: TritonServer) -> None:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        for name, call in _grpc_calls(client).items():
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert str(caught.value.status()) == "StatusCode.UNAVAILABLE", name
            assert "restricted" in caught.value.message(), name
        index = client.get_model_repository_index(headers={GRPC_CONTROL_KEY_HEADER: server.options.control_key})
        assert "clip_text" in {model.name for model in index.models}
    assert_server_still_serving(server)


def test_a_model_upload_without_the_key_is_refused_and_its_code_never_runs(
    server: TritonServer, tmp_path: Path
) -> None:
    marker = tmp_path / "the-upload-ran"
    config, source = evil_model(marker)
    body = {"parameters": {"config": config, "file:1/model.py": base64.b64encode(source.encode()).decode()}}
    status, _ = http(server, "POST", "/v2/repository/models/evil/load", body)
    assert status == 403
    with (
        grpcclient.InferenceServerClient(server.grpc_url) as client,
        pytest.raises(InferenceServerException, match="restricted"),
    ):
        client.load_model("evil", config=config, files={"file:1/model.py": source.encode()})
    assert not marker.exists()
    index = server.model_states()  # with the key
    assert "evil" not in {model["name"] for model in index}


def test_the_read_only_apis_stay_open_without_the_key(server: TritonServer) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/clip_rank", "/v2/models/clip_rank/ready"):
        assert http(server, "GET", path)[0] == 200, path
    status, text = http(server, "GET", "/v2/models/clip_text/config")
    assert status == 200 and json.loads(text)["name"] == "clip_text"
    assert http(server, "GET", "/v2/models/stats")[0] == 200
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        assert client.is_server_ready()
        assert client.get_model_config("clip_rank").config.name == "clip_rank"
        assert client.get_inference_statistics("clip_text_embed").model_stats
        text = grpcclient.InferInput("text", [1], "BYTES")
        text.set_data_from_numpy(np.array([b"open inference"], dtype=object))
        assert client.infer("clip_text_embed", [text]).as_numpy("text_embeds").shape[0] == 1
