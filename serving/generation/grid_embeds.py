"""The decoder's ``grids`` image input (``image_input: grids``): a family whose exported vision tower merges a
varying number of patches per image (Qwen2-VL's) hands the decoder its images' embeddings, one image after another
``[tokens, hidden]``, and each image's patch grid ``[images, (t, h, w)]``; vLLM takes them together as the model's
``{"image_embeds", "image_grid_thw"}`` and places each image's tokens by its grid (M-RoPE). An image costs
``t * h * w / merge^2`` tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.errors import InvalidInputError
from serving.validators import require_shape


@dataclass(frozen=True)
class GridImages:
    data: dict[str, Any]  # vLLM's image data: {"image_embeds": [tokens, hidden], "image_grid_thw": [images, 3]}
    images: int
    tokens: int


def grid_images(embeds: Any, grids: npt.NDArray[Any] | None, merge: int, hidden: int) -> GridImages | None:
    """Checked and copied (vLLM reads them after the request's input buffers are gone); None without images."""
    import torch

    if embeds is None and grids is None:
        return None
    if embeds is None or grids is None:
        raise InvalidInputError("image_grid_thw", "image_embeds and image_grid_thw come together")
    require_shape("image_grid_thw", tuple(grids.shape), [-1, 3])
    if (grids < 1).any() or (grids[:, 1:] % merge).any():
        raise InvalidInputError(
            "image_grid_thw", f"each grid must be positive, its rows and columns multiples of {merge}"
        )
    tokens = int(grids.astype(np.int64).prod(-1).sum()) // merge**2
    require_shape("image_embeds", tuple(embeds.shape), [tokens, hidden])
    if not bool(torch.isfinite(embeds).all()):
        raise InvalidInputError("image_embeds", "values must be finite (no NaN or infinity)")
    data = {"image_embeds": embeds.clone(), "image_grid_thw": torch.from_numpy(grids.astype(np.int64))}
    return GridImages(data, len(grids), tokens)


def warm_up_grid_images(merge: int, hidden: int) -> dict[str, Any]:
    """One image of one token."""
    import torch

    return {"image_embeds": torch.zeros(1, hidden), "image_grid_thw": torch.tensor([[1, merge, merge]])}


def with_videos(images: GridImages, videos: int, seconds: npt.NDArray[Any] | None) -> dict[str, Any]:
    """vLLM's multimodal data when the last ``videos`` grids are videos (``video_input: grids``): the images'
    ``{"image_embeds", "image_grid_thw"}`` and the videos' ``{"video_embeds", "video_grid_thw"}``, with
    ``"second_per_grid_ts"`` (seconds per frame group) where ``seconds`` is given: only for a model that places
    frames by time (vLLM's Qwen2-VL would scale its positions by it too, which transformers' does not)."""
    import torch

    grids, embeds = images.data["image_grid_thw"], images.data["image_embeds"]
    first_video = len(grids) - videos
    merge_square = int(grids.prod(-1).sum()) // images.tokens
    split = int(grids[:first_video].prod(-1).sum()) // merge_square
    data: dict[str, Any] = {}
    if first_video:
        data["image"] = {"image_embeds": embeds[:split], "image_grid_thw": grids[:first_video]}
    if videos:
        data["video"] = {"video_embeds": embeds[split:], "video_grid_thw": grids[first_video:]}
        if seconds is not None:
            if seconds.shape != (videos,) or not np.isfinite(seconds).all() or (seconds <= 0).any():
                raise InvalidInputError("video_second_per_grid", f"expected {videos} positive seconds, one per video")
            data["video"]["second_per_grid_ts"] = torch.from_numpy(seconds.astype(np.float32))
    return data
