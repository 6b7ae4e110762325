"""The chat benchmark's video workload: synthetic clips made with PyAV (decoded back here), sent as the client's
``videos`` on the direct path and as ``video_url`` parts through an OpenAI-style gateway; its flags' limits."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import av
import pytest

from benchmarks import cli
from benchmarks.gateway import GatewayLlava
from benchmarks.inputs import MAX_VIDEO_FRAMES, VIDEO_FPS, synthetic_videos
from benchmarks.vllm_peer import workload_payload
from benchmarks.workloads import Llava, Payload

pytestmark = pytest.mark.timeout(60)


def frames_of(clip: bytes) -> list[tuple[int, int, float]]:
    with av.open(io.BytesIO(clip)) as container:
        return [(f.width, f.height, float(f.time)) for f in container.decode(video=0)]


def test_each_clip_has_the_asked_frames_at_one_a_second_and_clips_differ() -> None:
    clips = synthetic_videos(2, 3, (64, 48), seed=0)
    assert [frames_of(clip) for clip in clips] == [[(64, 48, t / VIDEO_FPS) for t in range(3)]] * 2
    assert clips[0] != clips[1]  # distinct pixels: no encoder cache answers a repeated clip
    assert synthetic_videos(1, 2, (32, 32), seed=5) == synthetic_videos(1, 2, (32, 32), seed=5)


@pytest.mark.parametrize(
    ("frames", "size", "message"),
    [(0, (64, 48), "--video-frames"), (MAX_VIDEO_FRAMES + 1, (64, 48), "--video-frames"), (2, (63, 48), "even")],
)
def test_a_clip_that_cannot_be_made_is_refused_naming_the_flag(
    frames: int, size: tuple[int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        synthetic_videos(1, frames, size, seed=0)


def test_requests_carry_their_videos_before_the_question_on_both_paths() -> None:
    clips = (b"clip-0", b"clip-1", b"clip-2")
    payload = Payload((), ("q0", "q1"), 0, 1, 8, clips, 1)
    direct = Llava("127.0.0.1:8001", "grpc", payload, model="qwen2_vl")
    messages, images = direct.request(1)
    assert images == [] and direct.media(1) == {"videos": [b"clip-1"]}
    assert messages[0]["content"] == [{"type": "video"}, {"type": "text", "text": "q1"}]
    _, body, _ = GatewayLlava("http://127.0.0.1:1", "http", payload, model="qwen2_vl").gateway_request(2)
    video, text = body["messages"][0]["content"]
    assert video["type"] == "video_url" and video["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert base64.b64decode(video["video_url"]["url"].split(",", 1)[1]) == b"clip-2"
    assert text == {"type": "text", "text": "q0"}
    text_only = Llava("127.0.0.1:8001", "grpc", workload_payload(payload, "text"))
    assert text_only.media(0) == {} and text_only.request(0)[0][0]["content"] == [{"type": "text", "text": "q0"}]


def test_a_request_without_videos_asks_the_client_for_none() -> None:
    payload = Payload((b"\xff\xd8jpeg",), ("q",), 1, 1, 8)
    workload = Llava("127.0.0.1:8001", "grpc", payload)
    assert workload.media(0) == {} and workload.request(0)[0][0]["content"][0] == {"type": "image"}


@pytest.fixture
def folders(tmp_path: Path) -> list[str]:
    repository, checkpoint = tmp_path / "repository", tmp_path / "checkpoint"
    repository.mkdir()
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    return ["--serve", "--repository", str(repository), "--checkpoint", str(checkpoint)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chat", "--video-frames", "4"], "baselines send images only; pass --no-baselines"),
        (["clip-image", "--video-frames", "4", "--no-baselines"], "only chat requests carry videos, not clip-image"),
        (["chat", "--video-frames", "4", "--no-baselines", "--images", "x"], "leave out --images"),
    ],
)
def test_video_flags_that_cannot_work_are_refused(folders: list[str], argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cli.check_arguments(cli.build_parser().parse_args([*argv, *folders]))


def test_videos_only_needs_video_frames_and_the_payload_holds_the_clips() -> None:
    base = ["chat", "--url", "127.0.0.1:1", "--no-baselines", "--images-per-request", "0", "--input-count", "2"]
    with pytest.raises(ValueError, match=r"--images-per-request: must be 1\.\.32, got 0"):
        cli.build_payload(cli.build_parser().parse_args(base))
    with pytest.raises(ValueError, match=r"--videos-per-request: must be 1\.\.2, got 3"):
        cli.build_payload(cli.build_parser().parse_args([*base, "--video-frames", "2", "--videos-per-request", "3"]))
    args = cli.build_parser().parse_args([*base, "--video-frames", "2", "--image-sizes", "64x48,96x64"])
    payload = cli.build_payload(args)
    assert (payload.images, payload.images_per_request, payload.videos_per_request) == ((), 0, 1)
    assert [frames_of(clip)[0][:2] for clip in payload.videos] == [(64, 48), (96, 64)]  # the sizes in turn


def test_clips_take_the_sizes_in_turn() -> None:
    clips = synthetic_videos(3, 2, [(64, 48), (32, 32)], seed=1)
    assert [frames_of(clip)[0][:2] for clip in clips] == [(64, 48), (32, 32), (64, 48)]
    assert all(len(frames_of(clip)) == 2 for clip in clips)
    with pytest.raises(ValueError, match="even width and height"):
        synthetic_videos(1, 2, [(64, 48), (33, 32)], seed=1)
