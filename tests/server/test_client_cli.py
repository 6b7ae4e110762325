"""``vlm-client`` against the real server: JSON output over both protocols, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from serving.launcher import TritonServer, free_port
from tests.images import encode, scene


def _vlm_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_classify_prints_every_label_as_json(url: str, protocol: str, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(encode(scene(seed=50)))
    result = _vlm_client("--url", url, "--protocol", protocol, "--json", "classify", str(image), "--labels", "a,b,c")
    assert result.returncode == 0, result.stderr
    probabilities = json.loads(result.stdout)["probabilities"]
    assert sorted(probabilities) == ["a", "b", "c"]
    assert abs(sum(probabilities.values()) - 1.0) < 1e-5


def test_embed_text_and_image_print_unit_vectors(server: TritonServer, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(encode(scene(seed=51)))
    texts = _vlm_client("--url", server.grpc_url, "--json", "embed-text", "a dog", "a cat")
    images = _vlm_client("--url", server.grpc_url, "--json", "embed-image", str(image))
    assert texts.returncode == 0 and images.returncode == 0, texts.stderr + images.stderr
    vectors = [e["embedding"] for e in json.loads(texts.stdout)["embeddings"] + json.loads(images.stdout)["embeddings"]]
    assert len(vectors) == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_bad_image_exits_1_with_a_one_line_message(server: TritonServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = _vlm_client("--url", server.grpc_url, "embed-image", str(bad))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a decodable image" in result.stderr


def test_no_server_exits_1_saying_it_is_unavailable() -> None:
    result = _vlm_client("--url", f"127.0.0.1:{free_port()}", "--timeout", "5", "embed-text", "hello")
    assert result.returncode == 1
    assert result.stderr.startswith("vlm-client: ") and result.stderr.count("\n") == 1
