"""A clip's sampled frames as merged patches, bit for bit as the checkpoint's ``Qwen2VLVideoProcessor`` makes them:
every frame resized to the video processor's pixel budget (``smart_resize``; torchvision's antialiased resize on
uint8, which is what that processor runs, so torch is imported here, lazily, when a video arrives), rescaled and
normalised in its fused form, the frames padded to a multiple of the temporal patch by repeating the last, then
cut into ``temporal x patch x patch`` cubes ordered by merge block: ``[patches, channels * temporal * patch^2]`` and
the grid ``(frame groups, rows, columns)``. The per-frame pixel cap of transformers' ``cap_pixels_per_frame`` is
not applied: it binds only past 90% of 128,000 tokens of video, far beyond ``max_frames``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.image_processor import PROCESSOR_FILE
from serving.pixel_budget import PixelBudget
from serving.smart_resize import CHANNELS, PatchSettings, smart_resize

VIDEO_PROCESSOR_FILE = "video_preprocessor_config.json"  # what transformers' video processors save


def read_video_settings(folder: Path) -> PatchSettings:
    """From ``video_preprocessor_config.json``, or else the ``video_processor`` entry of ``processor_config.json``."""
    folder = Path(folder)
    if (folder / VIDEO_PROCESSOR_FILE).is_file():
        return PatchSettings.from_dict(json.loads((folder / VIDEO_PROCESSOR_FILE).read_text()))
    return PatchSettings.from_dict(json.loads((folder / PROCESSOR_FILE).read_text())["video_processor"])


def fused_pixel_table(settings: PatchSettings) -> npt.NDArray[np.float32]:
    """[channel, uint8 value] -> float32 value as the torch processors compute it: ``(v - mean / r) / (std / r)``
    in float32 (rescale folded into the mean and std), which differs from rescale-then-normalise in the last bit."""
    inverse = np.float32(1.0 / settings.rescale_factor)
    mean = np.array(settings.mean, dtype=np.float32) * inverse
    std = np.array(settings.std, dtype=np.float32) * inverse
    values = np.arange(256, dtype=np.float32)
    return ((values[None, :] - mean[:, None]) / std[:, None]).astype(np.float32)


class VideoPatchProcessor:
    """Frames ([height, width, 3] uint8 RGB, all one size) -> (float32 patches, int64 grid (t, rows, columns))."""

    def __init__(self, settings: PatchSettings) -> None:
        self.settings = settings
        self.table = fused_pixel_table(settings)

    def __call__(
        self, frames: Sequence[npt.NDArray[np.uint8]], budget: PixelBudget | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``budget``: the request's (transformers' processor applies a call's ``min_pixels`` / ``max_pixels`` to
        video frames as to images), else the video processor's own."""
        s = self.settings
        area = budget or s.budget
        height, width = smart_resize(frames[0].shape[0], frames[0].shape[1], s.factor, area.min_pixels, area.max_pixels)
        video = self.resize(np.stack(frames), height, width)  # [T, H, W, 3] uint8
        pixels = np.stack([self.table[c][video[..., c]] for c in range(CHANNELS)], axis=1)  # [T, 3, H, W]
        t = s.temporal_patch_size
        if pad := -len(pixels) % t:  # an odd count: the last frame again
            pixels = np.concatenate([pixels, np.repeat(pixels[-1:], pad, axis=0)])
        groups, m, p = len(pixels) // t, s.merge_size, s.patch_size
        rows, columns = height // p, width // p
        cubes = pixels.reshape(groups, t, CHANNELS, rows // m, m, p, columns // m, m, p)
        cubes = cubes.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat = np.ascontiguousarray(cubes.reshape(groups * rows * columns, s.patch_values), dtype=np.float32)
        return flat, np.array([groups, rows, columns], dtype=np.int64)

    def resize(self, video: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
        if video.shape[1:3] == (height, width):
            return video
        import torch
        import torchvision.transforms.v2.functional as tvF

        tensor: Any = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 3, 1, 2)))
        modes = {0: tvF.InterpolationMode.NEAREST, 2: tvF.InterpolationMode.BILINEAR, 3: tvF.InterpolationMode.BICUBIC}
        if self.settings.resample not in modes:
            raise ValueError(f"resample {self.settings.resample}: the video resize supports {sorted(modes)} only")
        interpolation = modes[self.settings.resample]
        resized = tvF.resize(tensor, [height, width], interpolation=interpolation, antialias=True)
        return np.asarray(resized.permute(0, 2, 3, 1).contiguous().numpy())
