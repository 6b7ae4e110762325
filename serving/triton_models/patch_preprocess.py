"""A merged-patch preprocess step (Qwen2-VL's): encoded image bytes [n] -> every image's patches, one image after
another [patches, 3 * temporal * patch^2], and each image's grid [n, (t, h, w)] for the vision tower and the decoder.

Decoding and its limits are ``ImagePreprocess``'s; the resize to the pixel budget and the patches are the
checkpoint's image processor's (``serving.smart_resize``). Images are decoded at full size: the grid and the token
count follow from the image's own size, which a reduced-scale JPEG decode would change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.errors import InvalidInputError
from serving.smart_resize import PatchImageProcessor, PatchSettings
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR, ImagePreprocess


class PatchPreprocess(ImagePreprocess):
    def setup(self) -> None:
        self.patcher = PatchImageProcessor(PatchSettings.read(self.artifacts / IMAGE_PROCESSOR_DIR))
        self.draft_side = None  # full-size decodes: the grid and token count follow from the image's own size
        self.read_limits()

    def handle(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        patches: list[npt.NDArray[Any]] = []
        grids: list[npt.NDArray[Any]] = []
        for index, image in enumerate(self.images(inputs)):  # one decoded image at a time
            try:
                image_patches, grid = self.patcher(image)
            except ValueError as error:  # an aspect ratio the resize refuses
                raise InvalidInputError(f"image[{index}]", str(error)) from None
            patches.append(image_patches)
            grids.append(grid)
        return {"pixel_values": np.concatenate(patches), "image_grid_thw": np.stack(grids)}
