"""Served SigLIP (a random one the tests build, exported into the session's repository beside CLIP and LLaVA)
equals Hugging Face's ``SiglipModel``: embeddings by cosine, and zero-shot and ranking scores as its sigmoid of
``exp(logit_scale) * cos + logit_bias`` per pair (not a softmax), over gRPC and HTTP."""

from __future__ import annotations

import numpy as np

from client import ModelNames, VLMClient
from tests.images import encode, scene
from tests.reference import SiglipReference, min_row_cosine

SIGLIP_MODELS = ModelNames(image_embed="siglip_image_embed", text_embed="siglip_text_embed", rank="siglip_rank")
TEXTS = ["a photo of a red circle", "Ünïcödé 日本語 🙂", "x", "a very long caption that goes on " + "and on " * 40]


def test_image_embeddings_equal_hugging_face(url: str, protocol: str, siglip_reference: SiglipReference) -> None:
    images = [scene(48, 48, seed=1), scene(96, 40, seed=2), scene(37, 90, seed=3)]
    with VLMClient(url, protocol=protocol, models=SIGLIP_MODELS) as client:
        served = client.embed_images([encode(image) for image in images])
    assert served.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert min_row_cosine(served, siglip_reference.image_embeds(images)) >= 0.9999


def test_text_embeddings_equal_hugging_face_with_max_length_padding(
    url: str, protocol: str, siglip_reference: SiglipReference
) -> None:
    with VLMClient(url, protocol=protocol, models=SIGLIP_MODELS) as client:
        counted = client.text_embeddings(TEXTS)
    assert counted.embeddings.shape == (len(TEXTS), 32)
    assert min_row_cosine(counted.embeddings, siglip_reference.text_embeds(TEXTS)) >= 0.9999
    tokenizer = siglip_reference.processor.tokenizer
    assert counted.token_counts == [len(tokenizer(text, truncation=True)["input_ids"]) for text in TEXTS]


def test_rank_scores_are_hugging_faces_sigmoid_per_pair(
    url: str, protocol: str, siglip_reference: SiglipReference
) -> None:
    images = [scene(seed=20), scene(seed=21)]
    texts = ["a photo of a dog", "a diagram of a square", "a red circle"]
    with VLMClient(url, protocol=protocol, models=SIGLIP_MODELS) as client:
        result = client.rank_texts([encode(image) for image in images], texts)
    logits, probs = siglip_reference.scores(images, texts)
    np.testing.assert_allclose(result["logits_per_image"], logits, atol=1e-4)
    np.testing.assert_allclose(result["probs"], probs, atol=1e-4)
    assert probs.min() > 0.05 and probs.max() < 0.95  # the comparison is not between saturated values
    assert not np.allclose(result["probs"].sum(axis=1), 1.0, atol=1e-3)  # independent per pair: no softmax


def test_zero_shot_classification_orders_labels_by_their_sigmoid_score(
    url: str, protocol: str, siglip_reference: SiglipReference
) -> None:
    image = scene(seed=30)
    labels = ["dog", "square", "circle", "tree"]
    with VLMClient(url, protocol=protocol, models=SIGLIP_MODELS) as client:
        result = client.classify(encode(image), labels)
    _, probs = siglip_reference.scores([image], [f"a photo of a {label}" for label in labels])
    assert list(result) == [labels[i] for i in np.argsort(-probs[0], kind="stable")]
    np.testing.assert_allclose([result[label] for label in labels], probs[0], atol=1e-4)
