"""Served CLIP embeddings and scores equal Hugging Face's on the same checkpoint, over gRPC and HTTP."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from client import VLMClient
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.reference import ClipReference, min_row_cosine
from tests.server.statistics import cache_hits

TEXTS = [
    "a photo of a red circle",
    "Ünïcödé 日本語 text with émojis 🙂",
    "x",
    "a very long caption that goes on " + "and on " * 80,  # > 77 tokens: truncated as CLIP does
]


def test_image_embeddings_equal_hugging_face(url: str, protocol: str, reference: ClipReference) -> None:
    images = [scene(96, 80, seed=s) for s in range(3)] + [scene(300, 120, seed=9)]
    blobs = [
        encode(images[0], "PNG"),
        encode(images[1], "JPEG", quality=90),
        encode(images[2], "WEBP"),
        encode(images[3]),
    ]
    decoded = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]
    with VLMClient(url, protocol=protocol) as client:
        served = client.embed_images(blobs)
    assert served.shape == (4, reference.model.config.projection_dim)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert min_row_cosine(served, reference.image_embeds(decoded)) >= 0.9999


def test_text_embeddings_equal_hugging_face_including_truncation(
    url: str, protocol: str, reference: ClipReference
) -> None:
    with VLMClient(url, protocol=protocol) as client:
        served = client.embed_texts(TEXTS)
    assert served.shape == (len(TEXTS), reference.model.config.projection_dim)
    assert min_row_cosine(served, reference.text_embeds(TEXTS)) >= 0.9999


def test_text_embeddings_count_the_tokens_each_text_was_read_as(
    url: str, protocol: str, reference: ClipReference
) -> None:
    with VLMClient(url, protocol=protocol) as client:
        counted = client.text_embeddings(TEXTS)
        plain = client.embed_texts(TEXTS)
    tokenizer = reference.processor.tokenizer
    expected = [len(tokenizer(text, truncation=True)["input_ids"]) for text in TEXTS]
    assert counted.token_counts == expected and expected[-1] == tokenizer.model_max_length
    np.testing.assert_allclose(counted.embeddings, plain, atol=1e-6)


def test_overlong_text_embeds_like_its_first_77_tokens(url: str, protocol: str) -> None:
    long_text = "a red circle " * 100
    with VLMClient(url, protocol=protocol) as client:
        full, longer = client.embed_texts([long_text, long_text + " and a blue square at the very end"])
    np.testing.assert_allclose(full, longer, atol=1e-6)


def test_clip_rank_probabilities_equal_hugging_face_softmax(url: str, protocol: str, reference: ClipReference) -> None:
    images = [scene(seed=20), scene(seed=21)]
    texts = ["a photo of a dog", "a diagram of a square", "a red circle"]
    with VLMClient(url, protocol=protocol) as client:
        result = client.rank_texts([encode(i) for i in images], texts)
    expected = reference.probs(images, texts)
    assert result["probs"].shape == (2, 3)
    np.testing.assert_allclose(result["probs"], expected, atol=1e-4)
    np.testing.assert_allclose(result["probs"].sum(axis=1), 1.0, atol=1e-5)


def test_classify_returns_every_label_most_likely_first(url: str, protocol: str, reference: ClipReference) -> None:
    image = scene(seed=30)
    labels = ["dog", "square", "circle"]
    with VLMClient(url, protocol=protocol) as client:
        result = client.classify(encode(image), labels)
    expected = reference.probs([image], [f"a photo of a {label}" for label in labels])[0]
    assert list(result) == [labels[i] for i in np.argsort(-expected, kind="stable")]
    np.testing.assert_allclose([result[label] for label in labels], expected, atol=1e-4)


@pytest.mark.parametrize("model", ["clip_image_embed", "clip_text_embed", "clip_rank"])
def test_a_repeated_request_is_answered_from_the_response_cache(server: TritonServer, model: str) -> None:
    calls = {
        "clip_image_embed": lambda client: client.embed_images([encode(scene(seed=60))]),
        "clip_text_embed": lambda client: client.embed_texts(["a cached sentence"]),
        "clip_rank": lambda client: client.rank_texts([encode(scene(seed=61))], ["a", "b"])["probs"],
    }
    with VLMClient(server.grpc_url) as client:
        first = calls[model](client)
        hits_before = cache_hits(server, model)
        second = calls[model](client)
    assert cache_hits(server, model) == hits_before + 1
    np.testing.assert_array_equal(first, second)
