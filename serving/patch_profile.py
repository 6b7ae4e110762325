"""The patch axis a merged-patch vision tower (Qwen2-VL's, exported with ``grid_thw``) is served over, for one
checkpoint: the fewest, a typical and the most patches one call of the tower takes. It is the one definition of that
range: the export records it beside the tower's ONNX file (``patch_profile.json``, from the checkpoint's image and
video processors), and the GPU path hands it to ONNX Runtime's TensorRT execution provider as its optimisation
profile (``serving.patch_providers``).

- min: one merged token (``merge_size^2`` patches), the graph's own lower bound. The image processor's
  ``min_pixels`` is not a floor: ``smart_resize`` shrinks an elongated image under ``max_pixels`` by flooring both
  sides, which can land below ``min_pixels``, and a profile that refused what the preprocess step makes would fail
  requests.
- opt: a typical image (``TYPICAL_IMAGE``, 720p) as the preprocess step resizes it: the size TensorRT tunes for.
- max: the largest call: ``grids_per_call`` times the larger of one image at the ``max_pixels`` cap and one video
  frame group (``temporal_patch_size`` frames, one grid row of frames) at the video processor's cap, within the
  graph's bound (``MAX_PATCHES``). The vision step calls the tower once per frame group (``patch_encoder``), so a
  video's length never sets the profile.

numpy only (no torch, no onnxruntime): the export and the python-backend step both read it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.smart_resize import MAX_ASPECT_RATIO, PatchSettings, smart_resize

PROFILE_FILE = "patch_profile.json"
MAX_PATCHES = 2**16  # the export's bound on the patch axis (a 1080p image is about 10,600 patches)
TYPICAL_IMAGE = (1280, 720)  # width, height: what the profile's opt shape is tuned for
GRID_VALUES = 3  # (frames, rows, columns) per image or video


def largest_area(settings: PatchSettings) -> int:
    """The most pixels ``smart_resize`` gives one image or frame. Within ``max_pixels``, except that a side floored
    to zero is raised to one merged token: then the long side is at most ``sqrt(MAX_ASPECT_RATIO * max_pixels)``
    (for the tiny presets' 50,176-pixel budget, a 200:1 image comes out 28 x 3,164)."""
    factor = settings.factor
    long_side = math.isqrt(MAX_ASPECT_RATIO * settings.max_pixels) // factor * factor
    return max(settings.max_pixels // factor**2 * factor**2, factor * long_side)


def image_patches(settings: PatchSettings, width: int, height: int) -> int:
    resized_height, resized_width = smart_resize(
        height, width, settings.factor, settings.min_pixels, settings.max_pixels
    )
    return resized_height * resized_width // settings.patch_size**2


@dataclass(frozen=True)
class PatchProfile:
    """Patches per call (min <= opt <= max), the values per patch and the most grids (images or videos) a call
    holds."""

    patch_values: int
    min_patches: int
    opt_patches: int
    max_patches: int
    max_grids: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_patches <= self.opt_patches <= self.max_patches:
            raise ValueError(f"{PROFILE_FILE}: patches must satisfy 1 <= min <= opt <= max, got {self}")
        if self.patch_values < 1 or self.max_grids < 1:
            raise ValueError(f"{PROFILE_FILE}: patch_values and max_grids must be positive, got {self}")

    def shapes(self, which: str) -> str:
        """ONNX Runtime's ``trt_profile_{min,opt,max}_shapes`` value: ``pixel_values:PxV,image_grid_thw:Gx3``."""
        patches = {"min": self.min_patches, "opt": self.opt_patches, "max": self.max_patches}[which]
        grids = self.max_grids if which == "max" else 1
        return f"pixel_values:{patches}x{self.patch_values},image_grid_thw:{grids}x{GRID_VALUES}"

    def write(self, folder: Path) -> Path:
        path = Path(folder) / PROFILE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> PatchProfile:
        path = Path(folder) / PROFILE_FILE
        if not path.is_file():
            raise ValueError(f"{PROFILE_FILE} is missing beside the vision tower: export the checkpoint again")
        return cls(**json.loads(path.read_text()))


def patch_profile(image: PatchSettings, video: PatchSettings, grids_per_call: int = 1) -> PatchProfile:
    """The range for a checkpoint whose image and video processors are ``image`` and ``video``, a call of the tower
    taking at most ``grids_per_call`` images or frame groups."""
    if image.patch_values != video.patch_values or image.merge_size != video.merge_size:
        raise ValueError("the image and video processors must cut the same patches (patch, temporal and merge sizes)")
    if grids_per_call < 1:
        raise ValueError(f"grids_per_call must be positive, got {grids_per_call}")
    smallest = image.merge_size**2
    largest_image = largest_area(image) // image.patch_size**2
    largest_frame_group = largest_area(video) // video.patch_size**2
    largest = min(MAX_PATCHES, grids_per_call * max(largest_image, largest_frame_group))
    typical = min(max(image_patches(image, *TYPICAL_IMAGE), smallest), largest)
    return PatchProfile(image.patch_values, smallest, typical, largest, grids_per_call)
