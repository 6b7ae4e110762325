"""A vision tower on merged patches (Qwen2-VL's, exported with ``grid_thw`` as an input) in the python backend: one
request's patches [patches, width] and grids [images, (t, h, w)] -> its images' embeddings [tokens, hidden], one
image after another.

The graph takes any number of images, but its attention is unfused: its mask and scores span every patch of a call
(quadratic in them) although each frame group attends only to itself. So each frame group runs in a call of its own
(a video's groups too: the same result, since a group's rotary positions and attention span do not depend on the
others), and requests are not batched together (two 396-patch images in one call took 113 ms against 2 x 48 here).

On the GPU targets its config selects ONNX Runtime's TensorRT execution provider, profiled by the export's patch
range (``serving.patch_providers``); elsewhere the session is ONNX Runtime's default, on the CPU.

This process imports numpy and onnxruntime, not torch or transformers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from serving.errors import InvalidInputError
from serving.manifest import ONNX_FILE
from serving.onnx_runner import OnnxRunner
from serving.patch_profile import PatchProfile
from serving.patch_providers import EXECUTION_PROVIDER, session_providers
from serving.triton_models.base import PythonModel
from serving.triton_models.onnx_encoder import ENCODER_NICENESS
from serving.validators import require_shape


def frame_groups(grids: npt.NDArray[np.int64]) -> Iterator[tuple[int, npt.NDArray[np.int64]]]:
    """Each frame group of each image or video, in the patches' order: (its first patch, its grid ``[1, 3]``)."""
    start = 0
    for frames, rows, columns in grids.tolist():
        for _ in range(frames):
            yield start, np.array([[1, rows, columns]], dtype=np.int64)
            start += rows * columns


class PatchEncoder(PythonModel):
    def setup(self) -> None:
        os.setpriority(os.PRIO_PROCESS, 0, ENCODER_NICENESS)  # as the other exported encoders
        self.merge = self.int_parameter("merge_size")
        profile = PatchProfile.read(self.artifacts) if EXECUTION_PROVIDER in self.parameters else None
        # TensorRT runs only shapes within its profile: a larger call is refused by name, not failed inside the engine.
        self.largest = profile.max_patches if profile else None
        self.runner = OnnxRunner(
            self.artifacts / ONNX_FILE,
            intra_op_threads=self.int_parameter("intra_op_thread_count", default=1),
            inter_op_threads=self.int_parameter("inter_op_thread_count", default=1),
            providers=session_providers(self.parameters, profile, ort.get_available_providers(), self.device_id),
        ).open()

    def handle(self, inputs: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        patches, grids = inputs["pixel_values"], inputs["image_grid_thw"]
        require_shape("image_grid_thw", grids.shape, [-1, 3])
        if not len(grids) or (grids < 1).any() or (grids[:, 1:] % self.merge).any():
            raise InvalidInputError(
                "image_grid_thw", f"each grid must be positive, its rows and columns multiples of {self.merge}"
            )
        group_patches = int((grids[:, 1] * grids[:, 2]).max())  # one call of the tower per frame group
        if self.largest is not None and group_patches > self.largest:
            raise InvalidInputError(
                "image_grid_thw",
                f"an image or video frame may hold at most {self.largest} patches here, got {group_patches}",
            )
        require_shape("pixel_values", patches.shape, [int(grids.prod(-1).sum()), -1])  # one row per grid cell
        if not np.isfinite(patches).all():
            raise InvalidInputError("pixel_values", "values must be finite (no NaN or infinity)")
        embeds = [
            self.runner.run({"pixel_values": patches[start : start + int(grid.prod())], "image_grid_thw": grid})
            for start, grid in frame_groups(grids.astype(np.int64))
        ]
        return {"image_embeds": np.concatenate([e["image_embeds"] for e in embeds])}
