"""Small real videos made with PyAV for the tests: each frame a flat colour that tells which frame it is."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import Image


def frame_colour(index: int) -> tuple[int, int, int]:
    """Frame ``index``'s colour: far enough from its neighbours' to survive lossy coding."""
    return (16 + (index * 37) % 224, 16 + (index * 11) % 224, 200 - (index * 7) % 180)


def frame_index(frame: np.ndarray, count: int) -> int:
    """Which of ``count`` coloured frames a decoded frame is (the nearest colour)."""
    mean = frame.reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(mean - np.array(frame_colour(i))).sum() for i in range(count)]))


def coloured_frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), frame_colour(i), dtype=np.uint8) for i in range(count)]


def encode_video(
    frames: Sequence[np.ndarray | Image.Image],
    fps: Fraction | int = 1,
    codec: str = "mpeg4",
    container: str = "mp4",
    gop: int = 12,
    pix_fmt: str = "yuv420p",
    b_frames: int = 0,
) -> bytes:
    """``frames`` (RGB arrays or images) as a video at ``fps``; every ``gop``-th frame a keyframe."""
    frames = [np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame) for frame in frames]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def repeated_keyframe_video(count: int, time_base: Fraction, step: int, size: tuple[int, int] = (32, 32)) -> bytes:
    """``count`` copies of one intra-coded frame, ``step`` ticks of ``time_base`` apart: a clip of any length or
    frame count made in a fraction of a second (nothing is encoded twice)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=Fraction(1, 1))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 1
        picture = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 128, dtype=np.uint8), format="rgb24")
        packets = [p for p in stream.encode(picture)] + [p for p in stream.encode()]
        payload = bytes(packets[0])
        stream.time_base = time_base
        for i in range(count):
            packet = av.Packet(payload)
            packet.stream = stream
            packet.pts = packet.dts = i * step
            packet.time_base = time_base
            packet.is_keyframe = True
            output.mux(packet)
    return buffer.getvalue()
