"""The prompt tokens an image costs, counted by the checkpoint's own Hugging Face processor, for families whose
count depends on the image's size (Idefics3 tiles an image by its size and aspect ratio): the count that vLLM's
processor, which expands the prompt's image placeholders the same way, will put in the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def processor_image_tokens(processor: Any, sizes: Sequence[tuple[int, int]]) -> list[int]:
    """Tokens of each image, given as (height, width), in the prompt the processor expands (the placeholder
    included). ``_get_num_multimodal_tokens`` is the count transformers' processors give vLLM's Transformers
    backend for the same purpose."""
    if not sizes:
        return []
    counts = processor._get_num_multimodal_tokens(image_sizes=[list(size) for size in sizes]).num_image_tokens
    return [int(count) for count in counts]
