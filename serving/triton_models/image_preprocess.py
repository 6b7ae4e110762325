"""``clip_preprocess`` and ``llava_preprocess``: encoded image bytes [n] -> pixel values [n, 3, S, S].

Decoding is ours (strict and bounded, see ``serving.images``); resizing, cropping and normalisation are
the checkpoint's own Hugging Face image processor (PIL backend), so served pixels equal what
``AutoProcessor`` gives in-process.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from serving.errors import InvalidInputError
from serving.images import load_rgb, open_image
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, require_count

IMAGE_PROCESSOR_DIR = "image_processor"


def load_image_processor(folder: str) -> object:
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(folder, backend="pil")


class ImagePreprocess(PythonModel):
    def setup(self) -> None:
        self.processor = load_image_processor(str(self.artifacts / IMAGE_PROCESSOR_DIR))
        self.max_images = self.int_parameter("max_images")
        self.max_image_pixels = self.int_parameter("max_image_pixels")
        self.max_aspect_ratio = self.int_parameter("max_aspect_ratio")
        self.max_request_pixels = self.int_parameter("max_request_pixels")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blobs = as_bytes_list(inputs["image"])
        require_count("image", len(blobs), self.max_images)
        # Every header is checked before any image is decoded, and images are decoded one at a time,
        # so a request costs at most one full-size decoded image of memory.
        opened = [open_image(blob, f"image[{i}]", self.max_image_pixels) for i, blob in enumerate(blobs)]
        total = sum(image.width * image.height for image in opened)
        if total > self.max_request_pixels:
            raise InvalidInputError(
                f"image: the request's images hold {total} pixels in all, the limit is {self.max_request_pixels}"
            )
        pixel_values = np.concatenate([self.pixels(image, f"image[{i}]") for i, image in enumerate(opened)])
        return {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)}

    def pixels(self, image: Image.Image, field: str) -> np.ndarray:
        rgb = load_rgb(image, field, self.max_aspect_ratio)
        return self.processor(images=[rgb], return_tensors="np")["pixel_values"]
