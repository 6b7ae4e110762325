"""``clip_preprocess`` and ``llava_preprocess``: encoded image bytes [n] -> pixel values [n, 3, S, S].

Decoding is ours (strict and bounded, see ``serving.images``); resizing, cropping and normalisation follow the
checkpoint's ``preprocessor_config.json`` with numpy and Pillow (``serving.image_processor``: no transformers,
no torch in this process), equal to what Hugging Face's processor gives in-process. A JPEG at least four
times larger than the resize target (on its short side) is decoded at a reduced scale that still leaves
twice the target, which is much cheaper and changes pixel values by a few levels at most (measured in the
parity tests).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from client.field_errors import FieldRef
from serving.errors import InvalidInputError
from serving.image_processor import ImageProcessor
from serving.images import load_rgb, open_image
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, require_count

IMAGE_PROCESSOR_DIR = "image_processor"
DRAFT_MARGIN = 2  # a reduced-scale decode keeps at least this many source pixels per resized pixel on each side


def draft_side(processor: ImageProcessor) -> int | None:
    target = processor.resize_side()
    return None if target is None else DRAFT_MARGIN * target


class ImagePreprocess(PythonModel):
    def setup(self) -> None:
        self.processor = ImageProcessor.from_folder(self.artifacts / IMAGE_PROCESSOR_DIR)
        self.draft_side = draft_side(self.processor)
        self.max_images = self.int_parameter("max_images")
        self.max_image_pixels = self.int_parameter("max_image_pixels")
        self.max_aspect_ratio = self.int_parameter("max_aspect_ratio")
        self.max_request_pixels = self.int_parameter("max_request_pixels")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blobs = as_bytes_list(inputs["image"])
        require_count("image", len(blobs), self.max_images)
        # Every header is checked before any image is decoded, and images are decoded one at a time,
        # so a request costs at most one full-size decoded image of memory.
        opened = [open_image(blob, FieldRef("image", i), self.max_image_pixels) for i, blob in enumerate(blobs)]
        total = sum(image.width * image.height for image in opened)
        if total > self.max_request_pixels:
            raise InvalidInputError(
                "image", f"the request's images hold {total} pixels in all, the limit is {self.max_request_pixels}"
            )
        return {"pixel_values": np.stack([self.pixels(image, FieldRef("image", i)) for i, image in enumerate(opened)])}

    def pixels(self, image: Image.Image, field: FieldRef) -> np.ndarray:
        return self.processor(load_rgb(image, field, self.max_aspect_ratio, self.draft_side))
