"""serving.similarity: CLIP logits and softmax over texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.similarity import SIMILARITY_FILE, image_text_scores, read_logit_scale, softmax, write_logit_scale


def unit_rows(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_softmax_rows_sum_to_one() -> None:
    logits = np.random.default_rng(0).normal(scale=10, size=(5, 7))
    np.testing.assert_allclose(softmax(logits, axis=1).sum(axis=1), np.ones(5), rtol=0, atol=1e-12)


def test_softmax_matches_the_textbook_formula() -> None:
    logits = np.array([[1.0, 2.0, 3.0]])
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(softmax(logits), expected, rtol=1e-12)


def test_softmax_of_huge_logits_does_not_overflow() -> None:
    probs = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0]], atol=1e-12)


def test_softmax_along_axis_zero_normalises_columns() -> None:
    probs = softmax(np.arange(6, dtype=np.float64).reshape(2, 3), axis=0)
    np.testing.assert_allclose(probs.sum(axis=0), np.ones(3), atol=1e-12)


def test_image_text_scores_match_a_numpy_computation() -> None:
    images, texts, scale = unit_rows(2, 16, seed=1), unit_rows(3, 16, seed=2), 100.0
    scores = image_text_scores(images, texts, scale)

    logits = scale * images.astype(np.float64) @ texts.astype(np.float64).T
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)

    assert scores["logits_per_image"].shape == (2, 3)
    assert scores["probs"].shape == (2, 3)
    assert scores["logits_per_image"].dtype == np.float32 and scores["probs"].dtype == np.float32
    np.testing.assert_allclose(scores["logits_per_image"], logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scores["probs"], probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores["probs"].sum(axis=1), np.ones(2), atol=1e-6)


def test_an_image_scores_highest_against_its_own_embedding() -> None:
    texts = unit_rows(4, 8, seed=3)
    scores = image_text_scores(texts[[2, 0]], texts, 100.0)
    assert scores["probs"].argmax(axis=1).tolist() == [2, 0]
    np.testing.assert_allclose(np.diag(scores["logits_per_image"][:, [2, 0]]), [100.0, 100.0], rtol=1e-5)


@pytest.mark.parametrize("scale", [100.0, 14.285714285714286, 1.0])
def test_logit_scale_roundtrips_through_the_similarity_file(tmp_path: Path, scale: float) -> None:
    path = write_logit_scale(tmp_path, scale)
    assert path == tmp_path / SIMILARITY_FILE
    assert path.is_file()
    assert read_logit_scale(tmp_path) == scale


def test_reading_a_missing_similarity_file_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_logit_scale(tmp_path)
