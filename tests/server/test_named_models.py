"""One repository serving checkpoints by name (tests/conftest.py: the families' defaults and a second CLIP exported as
``NAMED_CLIP``): the server lists them with their kinds (from the model configs, no control key), and each CLIP
answers under its own name with its own embeddings, equal to its own Hugging Face reference, over gRPC and HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from client import VLMClient
from tests.conftest import NAMED_CLIP
from tests.images import encode, scene
from tests.reference import ClipReference, min_row_cosine

TEXTS = ["a photo of a red circle", "two dogs", "x"]


def test_the_server_lists_every_exported_checkpoint_by_name_with_its_kind(url: str, protocol: str) -> None:
    with VLMClient(url, protocol=protocol) as client:
        served = client.served_models()
    assert {name: (m.family, m.kind) for name, m in served.items()} == {
        "clip": ("clip", "embedding"),
        NAMED_CLIP: ("clip", "embedding"),
        "llava": ("llava", "chat"),
        "llava_next": ("llava_next", "chat"),
        "siglip": ("siglip", "embedding"),
        "siglip2": ("siglip2", "embedding"),
    }
    assert served[NAMED_CLIP].triton_models == {
        "image_embed": f"{NAMED_CLIP}_image_embed",
        "text_embed": f"{NAMED_CLIP}_text_embed",
        "rank": f"{NAMED_CLIP}_rank",
    }
    assert served["llava"].text_model == "llava_decoder"
    assert served["llava_next"].text_model == "llava_next_decoder"


def test_each_clip_answers_under_its_name_with_its_own_embeddings(
    url: str, protocol: str, reference: ClipReference, named_clip_reference: ClipReference
) -> None:
    images = [scene(seed=60), scene(70, 50, seed=61)]
    blobs = [encode(image) for image in images]
    with (
        VLMClient(url, protocol=protocol) as default,
        VLMClient(url, protocol=protocol, embedding_model=NAMED_CLIP) as named,
    ):
        pairs = ((default, reference, 32), (named, named_clip_reference, 24))
        for client, expected, dimension in pairs:
            served_images, served_texts = client.embed_images(blobs), client.embed_texts(TEXTS)
            assert served_images.shape == (2, dimension) and served_texts.shape == (3, dimension)
            assert min_row_cosine(served_images, expected.image_embeds(images)) >= 0.9999
            assert min_row_cosine(served_texts, expected.text_embeds(TEXTS)) >= 0.9999
        probs = named.rank_texts([blobs[0]], TEXTS)["probs"]
        np.testing.assert_allclose(probs, named_clip_reference.probs(images[:1], TEXTS), atol=1e-4)


def test_vlm_client_lists_the_models_and_calls_one_by_name(
    url: str, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from client.cli import main as vlm_client

    common = ["--url", url, "--protocol", protocol, "--json"]
    assert vlm_client([*common, "models"]) == 0
    listed = {row["name"]: row["kind"] for row in json.loads(capsys.readouterr().out)["models"]}
    assert listed == {
        "clip": "embedding",
        NAMED_CLIP: "embedding",
        "llava": "chat",
        "llava_next": "chat",
        "siglip": "embedding",
        "siglip2": "embedding",
    }
    assert vlm_client([*common, "--model", NAMED_CLIP, "embed-text", "a red circle"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["embeddings"]
    assert len(row["embedding"]) == 24
    assert vlm_client([*common, "--model", "clip-large", "embed-text", "x"]) == 1
    assert "vlm-client:" in capsys.readouterr().err
