"""The client runs its tasks against the real server in a Python where torch and the server-side packages
cannot be imported (each is blocked in ``sys.modules`` before the client is imported)."""

from __future__ import annotations

import json
import subprocess
import sys

from serving.launcher import TritonServer
from tests.conftest import REPO_ROOT

BLOCKED = (
    "torch",
    "transformers",
    "tokenizers",
    "onnxruntime",
    "onnx",
    "safetensors",
    "serving",
    "export",
    "checkpoints",
    "tests",
)

SCRIPT = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None  # "import torch" now raises ImportError
import numpy as np
from PIL import Image
from client import AsyncVLMClient, VLMClient
image = np.full((64, 64, 3), 200, dtype=np.uint8)
out = {{}}
for protocol, url in (("grpc", {grpc!r}), ("http", {http!r})):
    with VLMClient(url, protocol=protocol) as vlm:
        out[protocol] = {{
            "classify": vlm.classify(image, ["a", "b"]),
            "caption": vlm.caption(Image.fromarray(image), max_tokens=4).completion_tokens,
        }}
print(json.dumps(out))
"""


def test_the_client_classifies_and_captions_with_torch_blocked(server: TritonServer) -> None:
    code = SCRIPT.format(blocked=BLOCKED, grpc=server.grpc_url, http=server.http_url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for protocol in ("grpc", "http"):
        assert sorted(out[protocol]["classify"]) == ["a", "b"]
        assert out[protocol]["caption"] == 4
