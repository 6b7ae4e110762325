"""The ``gpu`` target served by the NGC tritonserver: TensorRT engines for the encoders, the decoder on CUDA,
the projector's embeddings handed to it on the GPU. Served results agree with Hugging Face on the tiny
checkpoints, over gRPC and HTTP, within the fp16 engines' stated tolerance."""

from __future__ import annotations

import dataclasses
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client import VLMClient
from export.families.clip.spec import CLIP_TEXT, CLIP_VISION
from export.parity import ParityReport
from export.tensorrt_export import build_engines
from serving.launcher import TritonServer, loopback_options
from tests.images import encode, scene
from tests.reference import ClipReference, min_row_cosine

pytestmark = [pytest.mark.cuda, pytest.mark.tensorrt, pytest.mark.ngc_server]


@pytest.fixture(scope="module")
def gpu_server(
    repository_copy: Path,
    exported_clip: list[ParityReport],
    exported_llava: list[ParityReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("gpu") / "model_repository"
    shutil.copytree(repository_copy, repository, symlinks=True)
    outcomes = build_engines(repository)
    assert all(outcome.passed for outcome in outcomes), [outcome.summary() for outcome in outcomes]
    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    options = dataclasses.replace(loopback_options(repository, log, exit_timeout_s=2), target="gpu")
    with TritonServer(options) as running:
        yield running


@pytest.fixture(params=["grpc", "http"])
def url(gpu_server: TritonServer, request: pytest.FixtureRequest) -> tuple[str, str]:
    return (gpu_server.grpc_url if request.param == "grpc" else gpu_server.http_url), request.param


def test_the_encoders_are_served_from_tensorrt_engines_on_the_gpu(gpu_server: TritonServer) -> None:
    states = {model["name"]: model for model in gpu_server.model_states()}
    for name in ("clip_vision", "clip_text", "llava_vision", "llava_projector"):
        assert states[name]["state"] == "READY", states[name]


def test_served_clip_embeddings_agree_with_hugging_face_within_the_fp16_tolerance(
    url: tuple[str, str], tiny_clip: Path
) -> None:
    reference = ClipReference(tiny_clip)
    blobs = [encode(scene(96, 80, seed=s)) for s in range(3)]
    decoded = [Image.open(io.BytesIO(blob)).convert("RGB") for blob in blobs]
    texts = ["a photo of a red circle", "two dogs", "x"]
    with VLMClient(url[0], protocol=url[1]) as client:
        images, words = client.embed_images(blobs), client.embed_texts(texts)
    assert min_row_cosine(images, reference.image_embeds(decoded)) >= CLIP_VISION.fp16_tolerance.min_cosine
    assert min_row_cosine(words, reference.text_embeds(texts)) >= CLIP_TEXT.fp16_tolerance.min_cosine
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-2)


def test_the_llava_ensemble_streams_a_completion_with_an_image_on_the_gpu(url: tuple[str, str]) -> None:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe it"}]}]
    with VLMClient(url[0], protocol=url[1]) as client:
        pieces = list(client.generate_stream(messages, [encode(scene(seed=3))], max_tokens=12))
    final = pieces[-1]
    assert not isinstance(final, str)
    assert final.finish_reason in ("stop", "length") and 0 < final.completion_tokens <= 12
    assert final.prompt_tokens > final.completion_tokens  # the image tokens are in the prompt
