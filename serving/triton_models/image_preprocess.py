"""``clip_preprocess``, ``llava_preprocess``, ...: encoded image bytes [n] -> the vision tower's inputs for n images,
in the layout the config's ``pixel_layout`` parameter names: ``image`` (the default), pixel values [n, 3, S, S];
``patches`` (SigLIP2's NaFlex), pixel values [n, P, 3*p*p] with a patch mask [n, P] and patch grids [n, 2].

Decoding is ours (strict and bounded, see ``serving.images``); resizing, cropping and normalisation follow the
checkpoint's ``preprocessor_config.json`` with numpy and Pillow (``serving.image_processor``: no transformers,
no torch in this process), equal to what Hugging Face's processor gives in-process. A JPEG at least four
times larger than the resize target (on its short side) is decoded at a reduced scale that still leaves
twice the target, which is much cheaper and changes pixel values by a few levels at most (measured in the
parity tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from client.field_errors import FieldRef
from serving.errors import InvalidInputError
from serving.image_processor import ImageProcessor
from serving.images import load_rgb, open_image
from serving.naflex_processor import NaflexProcessor
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, require_count

IMAGE_PROCESSOR_DIR = "image_processor"
# The config parameter naming the layout, and the layout when it is absent.
PIXEL_LAYOUT_PARAMETER, DEFAULT_PIXEL_LAYOUT = "pixel_layout", "image"
DRAFT_MARGIN = 2  # a reduced-scale decode keeps at least this many source pixels per resized pixel on each side


class Processor(Protocol):
    def resize_side(self) -> int | None: ...

    def tensors(self, image: Image.Image) -> dict[str, np.ndarray]: ...


PIXEL_LAYOUTS: dict[str, Callable[[Path], Processor]] = {
    "image": ImageProcessor.from_folder,
    "patches": NaflexProcessor.from_folder,
}


def draft_side(processor: Processor) -> int | None:
    target = processor.resize_side()
    return None if target is None else DRAFT_MARGIN * target


class ImagePreprocess(PythonModel):
    def setup(self) -> None:
        layout = self.parameters.get(PIXEL_LAYOUT_PARAMETER, DEFAULT_PIXEL_LAYOUT)
        if layout not in PIXEL_LAYOUTS:
            raise ValueError(f"pixel_layout must be one of {tuple(PIXEL_LAYOUTS)}, got {layout!r}")
        self.processor = PIXEL_LAYOUTS[layout](self.artifacts / IMAGE_PROCESSOR_DIR)
        self.draft_side = draft_side(self.processor)
        self.read_limits()

    def read_limits(self) -> None:
        self.max_images = self.int_parameter("max_images")
        self.max_image_pixels = self.int_parameter("max_image_pixels")
        self.max_aspect_ratio = self.int_parameter("max_aspect_ratio")
        self.max_request_pixels = self.int_parameter("max_request_pixels")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        per_image = [self.processor.tensors(image) for image in self.images(inputs)]
        return {name: np.stack([tensors[name] for tensors in per_image]) for name in per_image[0]}

    def images(self, inputs: dict[str, np.ndarray]) -> Iterator[Image.Image]:
        """The request's images, decoded as the model sees them (RGB), one at a time."""
        blobs = as_bytes_list(inputs["image"])
        require_count("image", len(blobs), self.max_images)
        # Every header is checked before any image is decoded, and images are decoded one at a time,
        # so a request costs at most one full-size decoded image of memory (besides what the caller keeps).
        opened = [open_image(blob, FieldRef("image", i), self.max_image_pixels) for i, blob in enumerate(blobs)]
        total = sum(image.width * image.height for image in opened)
        if total > self.max_request_pixels:
            raise InvalidInputError(
                "image", f"the request's images hold {total} pixels in all, the limit is {self.max_request_pixels}"
            )
        for i, image in enumerate(opened):
            yield load_rgb(image, FieldRef("image", i), self.max_aspect_ratio, self.draft_side)


class DecodedImages(ImagePreprocess):
    """The preprocess step of a family whose images vLLM encodes: the same decoding, limits and errors, then the
    decoded pixels as they are (the engine's own processor resizes and tiles them): every image's RGB bytes one
    after another in ``pixels``, and their (height, width) in ``image_sizes``."""

    def setup(self) -> None:
        self.draft_side = None  # full-scale decodes: vLLM sees exactly the client's pixels
        self.read_limits()

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = [np.asarray(image, dtype=np.uint8) for image in self.images(inputs)]
        return {
            "pixels": np.concatenate([image.reshape(-1) for image in pixels]),
            "image_sizes": np.array([image.shape[:2] for image in pixels], dtype=np.int32).reshape(-1, 2),
        }
