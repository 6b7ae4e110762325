"""serving/generation/grid_embeds.py: a grids decoder's images are checked before vLLM sees them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving.errors import InvalidInputError
from serving.generation.grid_embeds import grid_images

pytestmark = pytest.mark.timeout(60)


def test_images_cost_their_grid_over_the_merge_squared_in_tokens() -> None:
    grids = np.array([[1, 6, 6], [1, 2, 10]], dtype=np.int64)
    images = grid_images(torch.ones(14, 64), grids, merge=2, hidden=64)
    assert images is not None and images.images == 2 and images.tokens == 9 + 5
    assert set(images.data) == {"image_embeds", "image_grid_thw"}


def test_no_images_is_none_and_half_of_them_is_refused() -> None:
    assert grid_images(None, None, 2, 64) is None
    with pytest.raises(InvalidInputError, match="image_embeds and image_grid_thw come together"):
        grid_images(torch.ones(1, 64), None, 2, 64)


@pytest.mark.parametrize(
    ("embeds", "grids", "message"),
    [
        (torch.ones(9, 64), [[1, 6, 5]], "multiples of 2"),
        (torch.ones(9, 64), [[0, 6, 6]], "must be positive"),
        (torch.ones(8, 64), [[1, 6, 6]], r"expected shape \[9, 64\]"),
        (torch.ones(9, 32), [[1, 6, 6]], r"expected shape \[9, 64\]"),
        (torch.full((9, 64), float("nan")), [[1, 6, 6]], "finite"),
    ],
)
def test_embeddings_that_do_not_match_their_grids_are_refused_by_name(
    embeds: torch.Tensor, grids: list[list[int]], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        grid_images(embeds, np.array(grids, dtype=np.int64), merge=2, hidden=64)
