"""Limits and admission shared by every family's entry steps: the per-image and per-request image bounds, and the
queue and instances of the python steps that take a client's request first."""

from __future__ import annotations

from client.video_parameters import (
    MAX_DECODE_SECONDS,
    MAX_FRAME_PIXELS,
    MAX_VIDEO_BYTES,
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_SECONDS,
    MAX_VIDEOS,
)
from export.specs import QueuePolicy, Resources

MAX_IMAGE_PIXELS = 36_000_000  # per image, checked from the header before any pixel is decoded
MAX_REQUEST_PIXELS = 128_000_000  # all images of one request: bounds decode time (about 10 phone photos)
MAX_ASPECT_RATIO = 20  # wider images are centre-cropped to this first; the towers see a square anyway
# A request's max_pixels / min_pixels (client.pixel_parameters) at most: Qwen2-VL's own processor default, 16,384
# merged 28-pixel tokens an image; a checkpoint whose own max_pixels is larger keeps its own (serving.pixel_budget).
MAX_PIXELS_CAP = 16_384 * 28 * 28

# Admission control, sized for the 2-core hosts the embedded configs target: a python step admits one request per
# client of 32 concurrent ones (a step takes milliseconds a request, and 8 refused 25 concurrent text clients on
# CI's machine), an encoder one full batch behind the one it runs. The timeouts bound a wait behind a slow or stuck
# instance. Excess is refused at once and clients back off (client.retry).
STEP_QUEUE = QueuePolicy(max_queue_size=32, timeout_us=10_000_000)
# SINGLE_INSTANCE_STALL: Triton 2.51 stalls a one-instance python model whose queue is full. Flooded at 700
# requests/s, one clip_preprocess instance served 12-16 requests/s (146/s at 150 requests/s) with its stub idle and
# admitted requests waiting 3-4 s in its queue: a rejected enqueue never wakes the batcher, which then waits for a
# free instance without being told of one. Two instances served 417/s under the same flood. So each entry step,
# the one whose queue fills first under overload, runs two instances.
ENTRY_STEP = Resources(instance_count=2)
# On a CPU a vision tower's batch costs its size (CLIP ViT-B/32, 2 threads: 5.9 images/s one at a time through the
# server, 4.6 at batch 8 in process), so the CPU targets send images to it one by one: a full queue drains in order
# instead of in batches of up to 32 that every image in them waits for (seconds each).
VISION_CPU_BATCH = 1


def image_limits(max_images: int) -> dict[str, str]:
    """An image preprocess step's parameters."""
    return {
        "max_images": str(max_images),
        "max_image_pixels": str(MAX_IMAGE_PIXELS),
        "max_request_pixels": str(MAX_REQUEST_PIXELS),
        "max_aspect_ratio": str(MAX_ASPECT_RATIO),
    }


def pixel_limits() -> dict[str, str]:
    """The parameters of a preprocess step that takes a request's pixel budget: the cap on its values."""
    return {"max_pixels_cap": str(MAX_PIXELS_CAP)}


def video_limits(max_frames: int) -> dict[str, str]:
    """A video preprocess step's parameters: ``max_frames`` is the family's cap on a request's ``max_frames`` (and
    its default)."""
    return {
        "max_videos": str(MAX_VIDEOS),
        "max_frames": str(max_frames),
        "max_video_bytes": str(MAX_VIDEO_BYTES),
        "max_video_seconds": str(MAX_VIDEO_SECONDS),
        "max_video_frames": str(MAX_VIDEO_FRAMES),
        "max_frame_pixels": str(MAX_FRAME_PIXELS),
        "max_decode_seconds": str(MAX_DECODE_SECONDS),
    }
