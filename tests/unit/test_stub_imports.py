"""The python-backend models other than the decoder load and answer without torch or transformers: each runs its
setup and a request in a fresh interpreter (this test process has torch loaded already), which then reports the
modules it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.triton_config import parse_pbtxt

HEAVY = ("torch", "transformers")

# model -> (the class its adapter serves, the code that sends it one request and checks the answer)
CASES = {
    "clip_tokenize": (
        "serving.triton_models.text_tokenize:TextTokenize",
        "out = model.handle({'text': np.array([b'a red circle', b'x'], dtype=object)})\n"
        "assert out['input_ids'].shape == (2, 5), out['input_ids'].shape",
    ),
    "clip_preprocess": (
        "serving.triton_models.image_preprocess:ImagePreprocess",
        "out = model.handle({'image': np.array([jpeg(640, 480)], dtype=object)})\n"
        "assert out['pixel_values'].shape == (1, 3, 64, 64)",
    ),
    "llava_preprocess": (
        "serving.triton_models.image_preprocess:ImagePreprocess",
        "out = model.handle({'image': np.array([jpeg(90, 70)], dtype=object)})\n"
        "assert out['pixel_values'].shape == (1, 3, 64, 64)",
    ),
    "llava_next_preprocess": (  # 90x70 picks the 2x2 grid: the base image and 4 tiles of 32 pixels
        "serving.triton_models.anyres_preprocess:AnyresPreprocess",
        "out = model.handle({'image': np.array([jpeg(90, 70), jpeg(20, 50)], dtype=object)})\n"
        "assert out['pixel_values'].shape == (8, 3, 32, 32), out['pixel_values'].shape\n"
        "assert out['image_sizes'].tolist() == [[70, 90], [50, 20]]",
    ),
    "llava_next_pack": (  # a 2x2 grid's 5 tiles of 16 tokens -> 16 + 8 rows of (8 + 1 newline) = 88 tokens
        "serving.triton_models.anyres_pack:AnyresPack",
        "tiles = np.ones((5 + 3, 16, 64), np.float32)\n"
        "out = model.handle({'tile_embeds': tiles, 'image_sizes': np.array([[64, 64], [10, 30]])})\n"
        "assert out['image_embeds'].shape == (2, 88, 64) and out['image_tokens'].tolist() == [88, 16 + 2 * 9]",
    ),
    "clip_similarity": (
        "serving.triton_models.similarity:Similarity",
        "e = np.eye(2, 32, dtype=np.float32)\n"
        "assert model.handle({'image_embeds': e, 'text_embeds': e})['probs'].shape == (2, 2)",
    ),
    "clip_text": (
        "serving.triton_models.onnx_encoder:OnnxEncoder",
        "ids = [np.full((1, n), 5, np.int64) for n in (3, 9)]\n"
        "batch = [model.validate({'input_ids': i, 'attention_mask': np.ones_like(i)}) for i in ids]\n"
        "assert [o['text_embeds'].shape for o in model.encode(batch)] == [(1, 32), (1, 32)]",
    ),
    "clip_vision": (
        "serving.triton_models.onnx_encoder:OnnxEncoder",
        "pixels = np.zeros((2, 3, 64, 64), np.float32)\n"
        "assert model.encode([model.validate({'pixel_values': pixels})])[0]['image_embeds'].shape == (2, 32)",
    ),
}

CHILD = """
import importlib, io, json, sys
from pathlib import Path
import numpy as np
from PIL import Image

def jpeg(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()

module, _, name = sys.argv[1].partition(":")
model = getattr(importlib.import_module(module), name)()
model.artifacts, model.model_name = Path(sys.argv[2]), "test"
model.parameters, model.response_cache = json.loads(sys.argv[3]), False
model.setup()
exec(sys.argv[4])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


@pytest.mark.parametrize("model", sorted(CASES))
def test_the_model_imports_neither_torch_nor_transformers(model_repository: Path, model: str) -> None:
    entry_point, request = CASES[model]
    config = parse_pbtxt((model_repository / model / "config.pbtxt").read_text())
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD.format(heavy=set(HEAVY)),
            entry_point,
            str(model_repository / model / "1"),
            json.dumps(parameters),
            request,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_check_sees_a_heavy_import_when_there_is_one(model_repository: Path) -> None:
    """The exporter needs torch and transformers: the same check run on it must report them, or the check proves
    nothing."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import export.families.llava.exporter, sys; print(sorted(set({HEAVY}) & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(HEAVY))
