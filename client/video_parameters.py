"""Video request fields and the server's video limits, defined once: the preprocess step's config parameters
(``export/families/limits.py``), its validation (``serving/video.py``), the client's request tensors and the
gateway's schema derive from here. Pure data: the client, the server and the gateway import it alike.

Sampling rule (README, "Video"): frames are taken at ``video_fps`` frames per second of the clip's own timeline,
starting with its first frame; when that keeps more than ``max_frames``, ``max_frames`` frames evenly spaced over the
whole clip are taken instead. A clip with no more frames than the sampling keeps is passed whole, in order.
"""

from __future__ import annotations

from client.parameters import NumberParameter

DEFAULT_VIDEO_FPS = 1.0  # frames per second kept when a request names none
MAX_VIDEO_FPS = 30.0
# Frames one request may keep, across its videos (each frame costs an image's tokens and a tower pass); a family's
# preprocess step may lower it (LLaVA: its images per request).
MAX_SAMPLED_FRAMES = 32

VIDEO_FPS = NumberParameter(
    "video_fps",
    "FP32",
    f"Frames per second of the clip to keep (default {DEFAULT_VIDEO_FPS:g})",
    minimum=0,
    exclusive_minimum=True,
    maximum=MAX_VIDEO_FPS,
    default=DEFAULT_VIDEO_FPS,
)
MAX_FRAMES = NumberParameter(
    "max_frames",
    "INT32",
    "Frames kept per video at most; past it they are spread evenly over the clip (default: the server's cap)",
    minimum=1,
    maximum=MAX_SAMPLED_FRAMES,
)
VIDEO_PARAMETERS = (VIDEO_FPS, MAX_FRAMES)
VIDEO_PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in VIDEO_PARAMETERS}

# Checked from the container's header and packets before any frame is decoded.
MAX_VIDEO_BYTES = 64 * 1024 * 1024  # per video (a data URL's decoded bytes, or a fetched body)
MAX_VIDEO_SECONDS = 600  # a clip's duration
MAX_VIDEO_FRAMES = 36_000  # frames in a clip (declared, or counted while demuxing): 10 minutes at 60 fps
MAX_FRAME_PIXELS = 3840 * 2160  # per frame: 4K UHD; 8K frames are refused
MAX_DECODE_SECONDS = 20  # wall-clock budget of one video's decode
MAX_VIDEOS = 2  # per request
# Codecs decoded (names as FFmpeg gives them); others (raw, lossless archival, image codecs) are refused by name.
SUPPORTED_CODECS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mpeg1video")
