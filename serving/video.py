"""Strict, bounded decoding and sampling of client video bytes (PyAV): frames as RGB arrays with their timestamps.

Every check that can be made before a frame is decoded is made first, each refusal naming the field and the
limit: the bytes are a video container (an image is told to go as an image), its codec is one of
``SUPPORTED_CODECS``, its frames are no larger than ``max_frame_pixels``, its declared duration and frame count are
within the caps. Then the packets are read without decoding (their timestamps and keyframes: the real frame count
and duration, checked again, and a truncated file is found here), the sampling rule picks the frames to keep
(``client.video_parameters``), and only the groups of pictures holding a kept frame are decoded, each from its
keyframe, stopping after the last kept frame, within a wall-clock budget. Memory is at most the kept frames.

The output (``SampledVideo``) is what any family takes: LLaVA's gets the frames as images, a native-video family
(Qwen2-VL) its frames and their spacing.
"""

from __future__ import annotations

import bisect
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

import av
import numpy as np

from client.field_errors import FieldRef
from client.media_kind import looks_like_image
from client.video_parameters import (
    MAX_DECODE_SECONDS,
    MAX_FRAME_PIXELS,
    MAX_VIDEO_BYTES,
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_SECONDS,
    SUPPORTED_CODECS,
)
from serving.errors import InvalidInputError
from serving.images import image_payload

Frame = np.ndarray[Any, np.dtype[np.uint8]]  # [height, width, 3] RGB

# A clip whose packets cover less than this share of its declared duration was cut short.
TRUNCATED_SHARE = 0.9
_AV_ERRORS = (av.FFmpegError, OSError, ValueError, EOFError, MemoryError, IndexError)


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int = MAX_VIDEO_BYTES
    max_seconds: float = MAX_VIDEO_SECONDS
    max_frames: int = MAX_VIDEO_FRAMES  # in the clip, before sampling
    max_frame_pixels: int = MAX_FRAME_PIXELS
    max_decode_seconds: float = MAX_DECODE_SECONDS


@dataclass(frozen=True)
class Sampling:
    """A request's ``video_fps`` and ``max_frames`` (validated against their ranges by the caller)."""

    fps: float
    max_frames: int

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)) or self.max_frames < 1:
            raise ValueError(f"sampling needs fps > 0 and max_frames >= 1, got {self.fps} and {self.max_frames}")


@dataclass(frozen=True)
class SampledVideo:
    frames: list[Frame] = field(repr=False)  # [height, width, 3] uint8 RGB, in presentation order
    timestamps: list[float]  # seconds from the clip's first frame, one per kept frame
    indices: list[int]  # each kept frame's place among the clip's frames (0-based, presentation order)
    clip_frames: int  # frames in the clip
    duration: float  # seconds

    @property
    def sampled_fps(self) -> float | None:
        """The kept frames' rate, from their timestamps (the real spacing, whichever sampling rule bound); None for
        a single frame."""
        if len(self.timestamps) < 2 or self.timestamps[-1] <= self.timestamps[0]:
            return None
        return (len(self.timestamps) - 1) / (self.timestamps[-1] - self.timestamps[0])


@dataclass(frozen=True)
class _Probe:
    times: list[float]  # every frame's presentation time, seconds from the first, sorted
    pts: list[int]  # the same frames' timestamps in the stream's time base
    keyframe_pts: list[int]  # sorted
    duration: float


def sample_indices(times: list[float], duration: float, sampling: Sampling) -> list[int]:
    """The frames the sampling rule keeps (``client.video_parameters``), by index into ``times`` (sorted seconds).

    At ``fps``, the sample instants are 0, 1/fps, 2/fps, ... before ``duration``; more than ``max_frames`` of them
    and the instants are ``max_frames`` evenly spaced ones, k * duration / max_frames. Each instant keeps the frame
    on screen then (the last one starting at or before it). A clip with no more frames than the instants is kept
    whole.
    """
    at_fps = max(1, math.ceil(duration * sampling.fps - 1e-9))
    count = min(at_fps, sampling.max_frames)
    if len(times) <= count:
        return list(range(len(times)))
    step = 1 / sampling.fps if at_fps <= sampling.max_frames else duration / count
    picked: list[int] = []
    for k in range(count):
        index = max(0, bisect.bisect_right(times, k * step + 1e-6) - 1)
        if not picked or index > picked[-1]:
            picked.append(index)
    return picked


def decode_video(
    data: bytes, field: str | FieldRef, sampling: Sampling, limits: VideoLimits = VideoLimits()
) -> SampledVideo:
    """The sampled frames of one client video (the module docstring's checks, in that order)."""
    data = image_payload(data, field)  # raw bytes or a base64 data URL, as images
    if not data:
        raise InvalidInputError(field, "empty; expected an encoded video")
    if len(data) > limits.max_bytes:
        raise InvalidInputError(field, f"video is {len(data)} bytes, the limit is {limits.max_bytes}")
    if looks_like_image(data):
        raise InvalidInputError(field, "is an image, not a video; send it as an image")
    deadline = time.monotonic() + limits.max_decode_seconds
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except _AV_ERRORS:
        raise InvalidInputError(field, "not a decodable video container, or it is corrupt or truncated") from None
    try:
        with container:
            stream = _video_stream(container, field, limits)
            probe = _probe(container, stream, field, limits, deadline)
            kept = sample_indices(probe.times, probe.duration, sampling)
            wanted = [probe.pts[i] for i in kept]
            frames = _decode(container, stream, wanted, probe.keyframe_pts, field, deadline, limits)
    except InvalidInputError:
        raise
    except _AV_ERRORS:
        raise InvalidInputError(field, "video data is corrupt or truncated") from None
    return SampledVideo(
        frames=frames,
        timestamps=[probe.times[i] for i in kept],
        indices=kept,
        clip_frames=len(probe.times),
        duration=probe.duration,
    )


def _video_stream(container: av.container.InputContainer, field: str | FieldRef, limits: VideoLimits) -> av.VideoStream:
    """The first video stream, its header within the limits."""
    if container.format.name in ("image2", "gif", "apng") or container.format.name.endswith("_pipe"):
        raise InvalidInputError(field, "is an image, not a video; send it as an image")
    if not container.streams.video:
        raise InvalidInputError(field, "holds no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in SUPPORTED_CODECS:
        raise InvalidInputError(
            field, f"video codec {codec!r} is not supported (supported: {', '.join(SUPPORTED_CODECS)})"
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise InvalidInputError(field, "the video's frame size is missing from its header")
    if width * height > limits.max_frame_pixels:
        raise InvalidInputError(
            field, f"frames are {width}x{height} = {width * height} pixels, the limit is {limits.max_frame_pixels}"
        )
    declared = _declared_seconds(container, stream)
    if declared and declared > limits.max_seconds:
        raise InvalidInputError(field, _too_long(declared, limits))
    if stream.frames > limits.max_frames:
        raise InvalidInputError(field, _too_many(f"declares {stream.frames}", limits))
    stream.thread_type = "NONE"  # one core per decode: the preprocess step's instances run side by side
    return stream


def _probe(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    field: str | FieldRef,
    limits: VideoLimits,
    deadline: float,
) -> _Probe:
    """Every frame's timestamp and the keyframes, from the packets alone (nothing decoded)."""
    pts: list[int] = []
    keyframes: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None:
            raise InvalidInputError(field, "the video's packets carry no timestamps")
        pts.append(stamp)
        if packet.is_keyframe:
            keyframes.append(stamp)
        if len(pts) > limits.max_frames:
            raise InvalidInputError(field, _too_many(f"holds more than {limits.max_frames}", limits))
        _check_deadline(field, deadline, limits)
    if stream.frames and len(pts) < stream.frames:
        raise InvalidInputError(field, f"video is truncated: {len(pts)} of its {stream.frames} frames are present")
    if not pts or not keyframes:
        raise InvalidInputError(field, "video holds no decodable frame")
    pts.sort()
    keyframes.sort()
    base = stream.time_base or Fraction(1, 90_000)
    times = [float((p - pts[0]) * base) for p in pts]
    rate = stream.average_rate or stream.guessed_rate
    gaps = np.diff(times)
    frame_time = float(np.median(gaps)) if len(gaps) else (float(1 / rate) if rate else 0.0)
    duration = times[-1] + frame_time
    if duration > limits.max_seconds:
        raise InvalidInputError(field, _too_long(duration, limits))
    declared = _declared_seconds(container, stream)
    if declared and duration < TRUNCATED_SHARE * declared - frame_time:
        raise InvalidInputError(
            field, f"video is truncated: its frames cover {duration:.1f} s of the {declared:.1f} s it declares"
        )
    return _Probe(times=times, pts=pts, keyframe_pts=keyframes, duration=max(duration, 1e-6))


def _decode(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    wanted: list[int],
    keyframes: list[int],
    field: str | FieldRef,
    deadline: float,
    limits: VideoLimits,
) -> list[Frame]:
    """The frames at the ``wanted`` timestamps (sorted) as RGB arrays; a group of pictures holding none of them is
    skipped by seeking to the next wanted frame's keyframe."""
    frames: list[Frame] = []
    decoded: Iterator[av.VideoFrame] | None = None
    position: int | None = None  # timestamp of the last frame decoded
    for target in wanted:
        keyframe = keyframes[max(0, bisect.bisect_right(keyframes, target) - 1)]
        if decoded is None or position is None or keyframe > position:
            container.seek(keyframe, stream=stream, backward=True, any_frame=False)
            decoded = container.decode(stream)
        for frame in decoded:
            _check_deadline(field, deadline, limits)
            position = frame.pts if frame.pts is not None else frame.dts
            if position is not None and position >= target:
                break
        if position != target:
            raise InvalidInputError(field, "video data is corrupt or truncated (a frame it indexes does not decode)")
        frames.append(cast(Frame, frame.to_ndarray(format="rgb24")))
    return frames


def _check_deadline(field: str | FieldRef, deadline: float, limits: VideoLimits) -> None:
    if time.monotonic() > deadline:
        budget = limits.max_decode_seconds
        raise InvalidInputError(field, f"video took longer than its decode budget of {budget:g} s; send a shorter clip")


def _declared_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The video stream's duration from the header; the container's when the video is its only stream (an audio
    track may outlast the picture)."""
    if stream.duration and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if len(container.streams) == 1 and container.duration and container.duration > 0:
        return float(container.duration / av.time_base)
    return None


def _too_long(seconds: float, limits: VideoLimits) -> str:
    return f"video lasts {seconds:.1f} s, the limit is {limits.max_seconds:g} s"


def _too_many(count: str, limits: VideoLimits) -> str:
    return f"video {count} frames, the limit is {limits.max_frames}"
