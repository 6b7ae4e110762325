"""The decoder's ``pixels`` image input (``image_input: pixels``): a family whose images vLLM encodes gets the
preprocess step's decoded pixels, turns them back into PIL images for vLLM's processor (which tiles and resizes
them, expands the prompt's image placeholders and runs the vision tower in the engine), and counts the prompt
tokens each image will cost, for the context budget, with the checkpoint's processor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import InvalidInputError
from serving.generation.processor_tokens import processor_image_tokens
from serving.validators import require_dtype, require_shape

IMAGE_INPUTS = ("embeds", "pixels", "grids")  # the decoder's image_input parameter: what the ensemble hands it
WARM_UP_SIDE = 64  # a warm-up image's side, in pixels


def image_input(parameters: dict[str, str]) -> str:
    value = parameters.get("image_input", "embeds")
    if value not in IMAGE_INPUTS:
        raise ValueError(f"image_input must be one of {', '.join(IMAGE_INPUTS)}, got {value!r}")
    return value


class PixelImages:
    def __init__(self, checkpoint: Path) -> None:
        from transformers import AutoProcessor

        # Counting only, which no backend changes; and a processor with a video processor (Qwen2-VL's) has no "pil"
        # backend to load.
        self.processor = AutoProcessor.from_pretrained(checkpoint)

    def images(self, inputs: dict[str, Any]) -> list[Any]:
        """``pixels`` (every image's RGB bytes, one after another) and ``image_sizes`` ([images, (height, width)])
        as PIL images; [] when the request sent none."""
        from PIL import Image

        if "pixels" not in inputs and "image_sizes" not in inputs:
            return []
        if "pixels" not in inputs or "image_sizes" not in inputs:
            raise InvalidInputError("pixels", "pixels and image_sizes come together")
        pixels, sizes = inputs["pixels"], inputs["image_sizes"]
        require_dtype("pixels", pixels.dtype, "uint8")
        require_shape("pixels", pixels.shape, [-1])
        require_shape("image_sizes", sizes.shape, [-1, 2])
        if sizes.size and int(sizes.min()) < 1:
            raise InvalidInputError("image_sizes", "every height and width must be at least 1")
        lengths = [int(height) * int(width) * 3 for height, width in sizes]
        if sum(lengths) != pixels.size:
            raise InvalidInputError(
                "pixels", f"holds {pixels.size} values; image_sizes describe {sum(lengths)} (height x width x 3 each)"
            )
        ends = np.cumsum(lengths)
        return [
            Image.fromarray(pixels[end - length : end].reshape(int(height), int(width), 3))
            for end, length, (height, width) in zip(ends, lengths, sizes, strict=True)
        ]

    def tokens(self, images: list[Any]) -> int:
        """Prompt tokens the images will take, their placeholders included."""
        return sum(processor_image_tokens(self.processor, [(image.height, image.width) for image in images]))

    @staticmethod
    def warm_up_image() -> Any:
        from PIL import Image

        return Image.new("RGB", (WARM_UP_SIDE, WARM_UP_SIDE))
