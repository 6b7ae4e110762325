"""The search index file: it round-trips, answers top-k by cosine similarity, and refuses another model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client import IndexMismatchError, SearchIndex, VLMError
from client.search import images_in


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _index() -> SearchIndex:
    rng = np.random.default_rng(0)
    return SearchIndex(["a.png", "b/c.jpg", "d.png"], _unit(rng.normal(size=(3, 8))), _unit(rng.normal(size=8)))


def test_an_index_round_trips_through_its_file(tmp_path: Path) -> None:
    index = _index()
    loaded = SearchIndex.load(index.save(tmp_path / "photos.index"))
    assert loaded.names == index.names
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    np.testing.assert_array_equal(loaded.probe, index.probe)


def test_top_k_is_the_k_most_similar_images_best_first() -> None:
    index = _index()
    hits = index.top_k(index.embeddings[2], k=2)
    assert hits[0].name == "d.png" and hits[0].score == pytest.approx(1.0)
    assert len(hits) == 2 and hits[0].score >= hits[1].score


def test_an_index_from_another_model_or_dimension_is_refused() -> None:
    index = _index()
    index.check_model(index.probe.copy())
    with pytest.raises(IndexMismatchError, match="different model"):
        index.check_model(_unit(index.probe + 0.5))
    with pytest.raises(IndexMismatchError, match="8-dimensional"):
        index.check_model(np.ones(4) / 2)


def test_a_file_that_is_not_an_index_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(2))
    with pytest.raises(VLMError, match=r"other\.npz: not a search index"):
        SearchIndex.load(path)


def test_images_are_found_recursively_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.PNG", "sub/a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in images_in(tmp_path)] == ["b.PNG", "sub/a.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(VLMError, match="holds no images"):
        images_in(tmp_path / "empty")
