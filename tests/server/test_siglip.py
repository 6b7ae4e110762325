"""Served SigLIP and SigLIP2 NaFlex (random ones the tests build, exported into the session's repository beside CLIP
and LLaVA) equal Hugging Face's ``SiglipModel`` and ``Siglip2Model``: embeddings by cosine, and zero-shot and ranking
scores as their sigmoid of ``exp(logit_scale) * cos + logit_bias`` per pair (not a softmax), over gRPC and HTTP.
SigLIP2 sees each image at its own aspect ratio (its own patch grid), several grids in one request."""

from __future__ import annotations

import numpy as np
import pytest

from client import ModelNames, VLMClient
from tests.images import encode, scene
from tests.reference import SiglipReference, min_row_cosine

TEXTS = ["a photo of a red circle", "Ünïcödé 日本語 🙂", "x", "a very long caption that goes on " + "and on " * 40]


def _models(prefix: str) -> ModelNames:
    return ModelNames(image_embed=f"{prefix}_image_embed", text_embed=f"{prefix}_text_embed", rank=f"{prefix}_rank")


@pytest.fixture(params=["siglip", "siglip2"])
def family(request: pytest.FixtureRequest) -> tuple[ModelNames, SiglipReference]:
    """The family's served model names and its Hugging Face reference."""
    prefix = request.param
    return _models(prefix), request.getfixturevalue(f"{prefix}_reference")


def test_image_embeddings_of_several_aspect_ratios_equal_hugging_face(
    url: str, protocol: str, family: tuple[ModelNames, SiglipReference]
) -> None:
    models, reference = family
    images = [scene(48, 48, seed=1), scene(96, 40, seed=2), scene(37, 90, seed=3), scene(200, 31, seed=4)]
    with VLMClient(url, protocol=protocol, models=models) as client:
        served = client.embed_images([encode(image) for image in images])
    assert served.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert min_row_cosine(served, reference.image_embeds(images)) >= 0.9999


def test_text_embeddings_equal_hugging_face_with_max_length_padding(
    url: str, protocol: str, family: tuple[ModelNames, SiglipReference]
) -> None:
    models, reference = family
    with VLMClient(url, protocol=protocol, models=models) as client:
        counted = client.text_embeddings(TEXTS)
    assert counted.embeddings.shape == (len(TEXTS), 32)
    assert min_row_cosine(counted.embeddings, reference.text_embeds(TEXTS)) >= 0.9999
    tokenizer = reference.processor.tokenizer
    assert counted.token_counts == [len(tokenizer(text, truncation=True)["input_ids"]) for text in TEXTS]


def test_rank_scores_are_hugging_faces_sigmoid_per_pair(
    url: str, protocol: str, family: tuple[ModelNames, SiglipReference]
) -> None:
    models, reference = family
    images = [scene(seed=20), scene(120, 50, seed=21)]
    texts = ["a photo of a dog", "a diagram of a square", "a red circle"]
    with VLMClient(url, protocol=protocol, models=models) as client:
        result = client.rank_texts([encode(image) for image in images], texts)
    logits, probs = reference.scores(images, texts)
    np.testing.assert_allclose(result["logits_per_image"], logits, atol=1e-4)
    np.testing.assert_allclose(result["probs"], probs, atol=1e-4)
    assert probs.min() > 0.05 and probs.max() < 0.95  # the comparison is not between saturated values
    assert not np.allclose(result["probs"].sum(axis=1), 1.0, atol=1e-3)  # independent per pair: no softmax


def test_zero_shot_classification_orders_labels_by_their_sigmoid_score(
    url: str, protocol: str, family: tuple[ModelNames, SiglipReference]
) -> None:
    models, reference = family
    image = scene(seed=30)
    labels = ["dog", "square", "circle", "tree"]
    with VLMClient(url, protocol=protocol, models=models) as client:
        result = client.classify(encode(image), labels)
    _, probs = reference.scores([image], [f"a photo of a {label}" for label in labels])
    assert list(result) == [labels[i] for i in np.argsort(-probs[0], kind="stable")]
    np.testing.assert_allclose([result[label] for label in labels], probs[0], atol=1e-4)
