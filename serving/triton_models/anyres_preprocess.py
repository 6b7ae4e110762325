"""An anyres preprocess step (LLaVA-NeXT's): encoded image bytes [n] -> every image's base image and tiles
[tiles, 3, S, S] for the vision tower, and each image's (height, width) [n, 2] for the packing step.

Decoding and its limits are ``ImagePreprocess``'s; the tiling is the checkpoint's image processor's
(``serving.image_processor``, ``serving.anyres``). Images are decoded at full size: the grid and the token count
follow from the image's own size, which a reduced-scale JPEG decode would change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.anyres import AnyresGrid
from serving.errors import InvalidInputError
from serving.image_processor import ImageProcessor
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR, ImagePreprocess


class AnyresPreprocess(ImagePreprocess):
    def setup(self) -> None:
        super().setup()
        self.tiler = ImageProcessor.from_folder(self.artifacts / IMAGE_PROCESSOR_DIR)
        grid = self.tiler.anyres_grid()
        if grid is None:
            raise ValueError("the image processor has no image_grid_pinpoints to tile images with")
        self.grid: AnyresGrid = grid
        self.draft_side = None  # full-size decodes: the grid and token count follow from the image's own size
        self.max_tiles = self.int_parameter("max_tiles")  # the vision tower's batch: one execution per request

    def handle(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        tiles: list[npt.NDArray[Any]] = []
        sizes: list[tuple[int, int]] = []
        for image in self.images(inputs):  # one decoded image at a time
            tiles.append(self.tiler.tiles(image, self.grid))
            sizes.append((image.height, image.width))
            if sum(len(t) for t in tiles) > self.max_tiles:
                raise InvalidInputError(
                    "image",
                    f"the request's images make more than {self.max_tiles} tiles for the vision tower (the limit)",
                )
        return {"pixel_values": np.concatenate(tiles), "image_sizes": np.array(sizes, dtype=np.int64)}
