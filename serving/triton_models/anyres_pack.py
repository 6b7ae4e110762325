"""An anyres packing step (LLaVA-NeXT's): the projected tiles of a request's images [tiles, patches², hidden] and
the images' sizes [n, 2] -> one sequence of image embeddings per image, padded to the longest [n, tokens, hidden],
and each image's length [n] for the decoder.

The grid, the tile and patch sizes and the newline vector are the checkpoint's, written by the export into this
step's version folder (``serving.anyres``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.anyres import AnyresGrid, read_newline
from serving.errors import InvalidInputError
from serving.triton_models.base import PythonModel
from serving.validators import require_shape


class AnyresPack(PythonModel):
    def setup(self) -> None:
        self.grid = AnyresGrid.read(self.artifacts)
        self.newline = read_newline(self.artifacts)

    def handle(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        embeds, sizes = inputs["tile_embeds"], inputs["image_sizes"]
        require_shape("image_sizes", sizes.shape, [-1, 2])
        if (sizes < 1).any():
            raise InvalidInputError("image_sizes", "heights and widths must be positive")
        counts = [self.grid.tiles(int(h), int(w)) for h, w in sizes]
        side = self.grid.features_side()
        require_shape("tile_embeds", embeds.shape, [sum(counts), side * side, self.newline.shape[0]])
        starts = np.cumsum([0, *counts])
        packed = [
            self.grid.pack(embeds[start:end], int(h), int(w), self.newline)
            for start, end, (h, w) in zip(starts[:-1], starts[1:], sizes, strict=True)
        ]
        lengths = np.array([len(p) for p in packed], dtype=np.int32)
        out = np.zeros((len(packed), int(lengths.max(initial=0)), self.newline.shape[0]), dtype=np.float32)
        for i, image in enumerate(packed):
            out[i, : len(image)] = image
        return {"image_embeds": out, "image_tokens": lengths}
