"""Accept a video as a path or encoded bytes; the server decodes and samples it (``client.video_parameters``)."""

from __future__ import annotations

from pathlib import Path

VideoLike = str | Path | bytes


def to_video_bytes(video: VideoLike) -> bytes:
    if isinstance(video, bytes):
        return video
    if isinstance(video, str | Path):
        return Path(video).read_bytes()
    raise TypeError(f"unsupported video type {type(video).__name__}: use a path or the encoded bytes")
