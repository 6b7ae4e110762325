"""A merged-patch preprocess step (Qwen2-VL's): encoded images [n] and videos [v] -> every image's patches, then every
video's, one after another [patches, 3 * temporal * patch^2], each one's grid [n + v, (t, h, w)] for the vision tower
and the decoder, how many frames each video gave (``sampled_frames``) and its seconds per frame group
(``video_second_per_grid``: temporal patch / the kept frames' real rate).

Decoding and its limits are ``ImagePreprocess``'s and ``serving.video``'s (the request's ``video_fps`` and
``max_frames``, as for LLaVA); images are resized and patched as the checkpoint's image processor does
(``serving.smart_resize``), videos as its video processor does (``serving.video_patches``), each within the request's
``min_pixels`` / ``max_pixels`` when it gives them (checked by ``serving.pixel_budget`` against the config's
``max_pixels_cap``), as transformers' processor applies them to images and video frames alike. Images are decoded at
full size: the grid and the token count follow from the image's own size, which a reduced-scale JPEG decode would
change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from serving.errors import InvalidInputError
from serving.pixel_budget import BudgetLimits
from serving.smart_resize import PatchImageProcessor, PatchSettings
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR
from serving.triton_models.video_preprocess import VideoFramesPreprocess
from serving.video_patches import VideoPatchProcessor, read_video_settings

VIDEO_PROCESSOR_DIR = "video_processor"  # the video processor's settings, beside the image processor's


class PatchPreprocess(VideoFramesPreprocess):
    def setup(self) -> None:
        self.patcher = PatchImageProcessor(PatchSettings.read(self.artifacts / IMAGE_PROCESSOR_DIR))
        self.video_patcher = VideoPatchProcessor(read_video_settings(self.artifacts / VIDEO_PROCESSOR_DIR))
        self.draft_side = None  # full-size decodes: the grid and token count follow from the image's own size
        self.read_limits()
        cap = self.int_parameter("max_pixels_cap")
        image, video = self.patcher.settings, self.video_patcher.settings
        self.image_budget = BudgetLimits.of(image.budget, image.factor, cap)
        self.video_budget = BudgetLimits.of(video.budget, video.factor, cap, "video processor")

    def handle(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        videos = self.video_blobs(inputs)
        patches: list[npt.NDArray[Any]] = []
        grids: list[npt.NDArray[Any]] = []
        budget = self.image_budget.budget(inputs) if "image" in inputs else None
        video_budget = self.video_budget.budget(inputs) if videos else None
        images = self.images(inputs) if "image" in inputs else []
        for index, image in enumerate(images):  # one decoded image at a time
            try:
                image_patches, grid = self.patcher(image, budget)
            except ValueError as error:  # an aspect ratio the resize refuses
                raise InvalidInputError(f"image[{index}]", str(error)) from None
            patches.append(image_patches)
            grids.append(grid)
        sampling = self.sampling(inputs)
        frames, seconds = [], []
        for index, blob in enumerate(videos):
            video = self.decode(blob, index, sampling)
            try:
                video_patches, grid = self.video_patcher(video.frames, video_budget)
            except ValueError as error:
                raise InvalidInputError(f"video[{index}]", str(error)) from None
            patches.append(video_patches)
            grids.append(grid)
            frames.append(len(video.frames))
            fps = video.sampled_fps or sampling.fps  # one frame: the requested rate
            seconds.append(self.video_patcher.settings.temporal_patch_size / fps)
        return {
            "pixel_values": np.concatenate(patches),
            "image_grid_thw": np.stack(grids),
            "sampled_frames": np.array(frames, dtype=np.int32),
            "video_second_per_grid": np.array(seconds, dtype=np.float32),
        }
