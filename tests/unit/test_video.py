"""decode_video: bounded decoding and the sampling rule, on real small videos made here with PyAV."""

from __future__ import annotations

import base64
import io
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from client.field_errors import FieldRef
from client.video_parameters import MAX_FRAME_PIXELS, MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from serving.errors import InvalidInputError
from serving.images import decode_image
from serving.video import Sampling, VideoLimits, decode_video, sample_indices
from tests.videos import coloured_frames, encode_video, frame_index, repeated_keyframe_video

pytestmark = pytest.mark.timeout(60)

FIELD = FieldRef("video", 1)
LIMITS = VideoLimits()


def used_frames(data: bytes, fps: float, max_frames: int, count: int) -> list[int]:
    """Which of the clip's ``count`` coloured frames the sampling kept, read from the decoded pixels."""
    video = decode_video(data, FIELD, Sampling(fps, max_frames))
    assert video.indices == [frame_index(frame, count) for frame in video.frames]
    return video.indices


def refusal(data: bytes, limits: VideoLimits = LIMITS) -> str:
    with pytest.raises(InvalidInputError) as caught:
        decode_video(data, FIELD, Sampling(1.0, 4), limits)
    assert caught.value.field == FIELD
    return caught.value.reason


def test_a_clip_with_no_more_frames_than_the_sampling_keeps_is_passed_whole_in_order() -> None:
    clip = encode_video(coloured_frames(4), fps=1)
    video = decode_video(clip, FIELD, Sampling(1.0, 8))
    assert video.indices == [0, 1, 2, 3]
    assert video.timestamps == [0.0, 1.0, 2.0, 3.0]
    assert [frame_index(frame, 4) for frame in video.frames] == [0, 1, 2, 3]
    assert video.frames[0].shape == (48, 64, 3) and video.frames[0].dtype == np.uint8
    assert used_frames(clip, 4.0, 32, 4) == [0, 1, 2, 3]  # more instants than frames: still each frame once


def test_frames_are_taken_at_the_requested_fps_of_the_clips_timeline() -> None:
    clip = encode_video(coloured_frames(16), fps=4)  # 4 s at 4 fps
    assert used_frames(clip, 1.0, 32, 16) == [0, 4, 8, 12]
    assert used_frames(clip, 2.0, 32, 16) == [0, 2, 4, 6, 8, 10, 12, 14]


def test_past_max_frames_the_frames_are_spread_evenly_over_the_whole_clip() -> None:
    clip = encode_video(coloured_frames(20), fps=1, gop=3)  # 20 s; at 1 fps 20 instants, over max_frames
    assert used_frames(clip, 1.0, 4, 20) == [0, 5, 10, 15]
    assert used_frames(clip, 1.0, 5, 20) == [0, 4, 8, 12, 16]


def test_the_rule_is_a_pure_function_of_timestamps_duration_and_the_request() -> None:
    times = [i / 30 for i in range(300)]  # 10 s at 30 fps
    assert sample_indices(times, 10.0, Sampling(1.0, 32)) == [30 * k for k in range(10)]
    assert sample_indices(times, 10.0, Sampling(2.0, 4)) == [0, 75, 150, 225]
    assert sample_indices(times[:3], 0.1, Sampling(1.0, 1)) == [0]


@pytest.mark.parametrize(
    ("codec", "container"), [("libx264", "mp4"), ("libx264", "matroska"), ("libvpx-vp9", "webm"), ("mpeg4", "avi")]
)
def test_common_codecs_and_containers_decode_to_the_frames_they_hold(codec: str, container: str) -> None:
    clip = encode_video(coloured_frames(12), fps=2, codec=codec, container=container, gop=4)
    assert used_frames(clip, 1.0, 32, 12) == [0, 2, 4, 6, 8, 10]


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_b_frames_and_seeks_between_groups_of_pictures_give_the_frame_on_screen_at_each_instant(codec: str) -> None:
    clip = encode_video(coloured_frames(40), fps=4, codec=codec, gop=8, b_frames=2)  # 10 s, decoded out of order
    assert used_frames(clip, 1.0, 32, 40) == [4 * k for k in range(10)]
    assert used_frames(clip, 1.0, 3, 40) == [0, 13, 26]  # instants 0, 3.33 and 6.67 s


def test_a_data_url_is_accepted_as_images_are() -> None:
    clip = encode_video(coloured_frames(3), fps=1)
    url = b"data:video/mp4;base64," + base64.b64encode(clip)
    assert decode_video(url, FIELD, Sampling(1.0, 4)).indices == [0, 1, 2]


def test_an_hours_long_clip_is_refused_by_its_declared_duration() -> None:
    clip = repeated_keyframe_video(3, Fraction(1, 1), 3600)  # 3 frames an hour apart
    assert f"the limit is {MAX_VIDEO_SECONDS:g} s" in refusal(clip)


def test_a_clip_declaring_100000_frames_is_refused_before_any_frame_is_read() -> None:
    clip = repeated_keyframe_video(100_000, Fraction(1, 1000), 1)  # 100 s at 1000 fps
    assert refusal(clip) == f"video declares 100000 frames, the limit is {MAX_VIDEO_FRAMES}"


def test_frames_are_counted_while_demuxing_when_the_container_declares_none() -> None:
    clip = encode_video(coloured_frames(30), fps=10, container="matroska")  # Matroska declares no frame count
    assert refusal(clip, VideoLimits(max_frames=20)) == "video holds more than 20 frames, the limit is 20"


def test_8k_frames_are_refused_from_the_header() -> None:
    clip = encode_video([np.zeros((4320, 7680, 3), dtype=np.uint8)])
    assert refusal(clip) == f"frames are 7680x4320 = 33177600 pixels, the limit is {MAX_FRAME_PIXELS}"


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_a_truncated_container_is_refused(keep: float) -> None:
    for container in ("mp4", "matroska"):
        clip = encode_video(coloured_frames(24), codec="libx264", container=container, gop=4)
        assert "truncated" in refusal(clip[: int(len(clip) * keep)])


def test_corrupt_bytes_are_refused() -> None:
    clip = bytearray(encode_video(coloured_frames(20)))
    clip[600:1400] = bytes(800)
    assert "corrupt" in refusal(bytes(clip))
    assert "not a decodable video" in refusal(b"not a video at all" * 50)
    assert refusal(b"") == "empty; expected an encoded video"


def test_an_unsupported_codec_is_refused_by_name() -> None:
    clip = encode_video(coloured_frames(4), codec="ffv1", container="matroska")
    assert refusal(clip).startswith("video codec 'ffv1' is not supported (supported: h264,")


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "WEBP"])
def test_an_image_sent_as_a_video_is_told_to_go_as_an_image(image_format: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format=image_format)
    assert refusal(buffer.getvalue()) == "is an image, not a video; send it as an image"


def test_a_video_sent_as_an_image_is_told_to_go_as_a_video() -> None:
    for container in ("mp4", "matroska", "avi"):
        clip = encode_video(coloured_frames(2), container=container)
        with pytest.raises(InvalidInputError, match="is a video, not an image; send it as a video"):
            decode_image(clip, FieldRef("image", 0), 36_000_000, 20)


def test_the_byte_limit_and_the_decode_budget_bound_one_video() -> None:
    clip = encode_video(coloured_frames(8))
    assert refusal(clip, VideoLimits(max_bytes=100)) == f"video is {len(clip)} bytes, the limit is 100"
    assert "decode budget of 0 s" in refusal(clip, VideoLimits(max_decode_seconds=0.0))
