"""The client is thin: it imports and encodes images without torch or the server-side packages."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client import ServerUnavailableError, VLMClient
from client.images import to_image_bytes
from serving.launcher import free_port

HEAVY = ("torch", "transformers", "onnxruntime", "onnx", "serving", "export", "checkpoints")


def test_importing_the_client_loads_no_server_side_package() -> None:
    code = (
        "import sys, client, client.cli\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_images_are_accepted_as_path_bytes_pil_and_numpy(tmp_path: Path) -> None:
    image = Image.new("RGB", (5, 4), (1, 2, 3))
    path = tmp_path / "x.png"
    image.save(path)
    for item in (path, str(path), path.read_bytes(), image, np.asarray(image)):
        decoded = Image.open(io.BytesIO(to_image_bytes(item)))
        assert decoded.size == (5, 4) and decoded.getpixel((0, 0)) == (1, 2, 3)


def test_an_unsupported_image_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unsupported image type"):
        to_image_bytes(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_no_server_raises_server_unavailable_on_both_protocols(protocol: str) -> None:
    with (
        VLMClient(f"127.0.0.1:{free_port()}", protocol=protocol, timeout=5) as client,
        pytest.raises(ServerUnavailableError),
    ):
        client.embed_texts(["hello"])
