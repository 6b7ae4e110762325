"""serving.similarity: logits with the checkpoint's scale and bias, a softmax over texts or a sigmoid per pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serving.similarity import (
    SIMILARITY_FILE,
    image_text_scores,
    read_logit_bias,
    read_logit_scale,
    softmax,
    write_logit_scale,
)


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


def test_sigmoid_scoring_is_an_independent_probability_per_pair_with_the_bias() -> None:
    images, texts, scale, bias = unit_rows(2, 16, seed=4), unit_rows(3, 16, seed=5), 10.0, -2.5
    scores = image_text_scores(images, texts, scale, logit_bias=bias, scoring="sigmoid")

    logits = scale * images.astype(np.float64) @ texts.astype(np.float64).T + bias
    np.testing.assert_allclose(scores["logits_per_image"], logits, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scores["probs"], 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    assert scores["probs"].dtype == np.float32


def test_sigmoid_scoring_is_finite_at_extreme_logits() -> None:
    rows = unit_rows(2, 4, seed=6)
    scores = image_text_scores(rows, -rows, 1e4, logit_bias=0.0, scoring="sigmoid")
    assert np.isfinite(scores["probs"]).all() and scores["probs"].max() < 1e-6


def test_an_unknown_scoring_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="tanh"):
        image_text_scores(unit_rows(1, 4, seed=7), unit_rows(1, 4, seed=8), 1.0, scoring="tanh")


def test_the_bias_roundtrips_and_defaults_to_zero_for_older_files(tmp_path: Path) -> None:
    write_logit_scale(tmp_path, 3.0, logit_bias=-1.5)
    assert (read_logit_scale(tmp_path), read_logit_bias(tmp_path)) == (3.0, -1.5)
    (tmp_path / SIMILARITY_FILE).write_text('{"logit_scale": 2.0}')
    assert read_logit_bias(tmp_path) == 0.0
