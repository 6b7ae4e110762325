"""Videos on LLaVA, served end to end: the preprocess step decodes and samples each clip, its frames go through the
vision tower as images, and the answer equals Hugging Face ``generate`` on the same frames given as images."""

from __future__ import annotations

import pytest
from PIL import Image

from client import VLMClient
from client.errors import InvalidInputError
from serving.launcher import TritonServer
from serving.video import Sampling, decode_video
from tests.images import encode, scene
from tests.reference import LlavaReference
from tests.videos import encode_video

pytestmark = pytest.mark.timeout(300)


def video_turn(text: str, before: tuple[str, ...] = ("video",)) -> list[dict]:
    return [{"role": "user", "content": [*({"type": kind} for kind in before), {"type": "text", "text": text}]}]


def as_images(messages: list[dict], frames: list[int]) -> list[dict]:
    """The conversation Hugging Face gets: each video item as its frames' image items."""
    counts = iter(frames)
    return [
        {
            **message,
            "content": [
                part
                for item in message["content"]
                for part in ([{"type": "image"}] * next(counts) if item["type"] == "video" else [item])
            ],
        }
        for message in messages
    ]


def frames_of(clip: bytes, fps: float, max_frames: int) -> list[Image.Image]:
    return [Image.fromarray(frame) for frame in decode_video(clip, "video", Sampling(fps, max_frames)).frames]


def test_a_short_clip_at_its_own_rate_gives_hf_generates_tokens_on_its_frames(
    server: TritonServer, url: str, protocol: str, llava_reference: LlavaReference
) -> None:
    clip = encode_video([scene(64, 48, seed=40 + i) for i in range(4)], fps=1)  # 4 frames at 1 fps
    messages = video_turn("what happens in the video?")
    with VLMClient(url, protocol=protocol) as client:
        completion = client.generate(messages, videos=[clip], video_fps=1.0, max_tokens=16)
    assert completion.video_frames == [4]
    frames = frames_of(clip, 1.0, 4)
    assert completion.token_ids == llava_reference.greedy(as_images(messages, [4]), frames, 16)
    assert completion.prompt_tokens == llava_reference.inputs(as_images(messages, [4]), frames)["input_ids"].shape[1]


def test_images_and_a_video_in_one_turn_keep_the_conversations_order(
    server: TritonServer, url: str, protocol: str, llava_reference: LlavaReference
) -> None:
    clip = encode_video([scene(64, 48, seed=50 + i) for i in range(2)], fps=1)
    image = scene(seed=55)
    messages = video_turn("compare them.", before=("video", "image"))
    with VLMClient(url, protocol=protocol) as client:
        completion = client.generate(messages, [encode(image)], videos=[clip], max_tokens=12)
    assert completion.video_frames == [2]
    pictures = [*frames_of(clip, 1.0, 4), image]
    assert completion.token_ids == llava_reference.greedy(as_images(messages, [2]), pictures, 12)


def test_a_longer_clip_is_sampled_by_the_rule(
    server: TritonServer, url: str, protocol: str, llava_reference: LlavaReference
) -> None:
    """20 different frames at 1 fps, at most 4 kept: the rule keeps frames 0, 5, 10 and 15, and the served answer is
    Hugging Face's on those frames (taken from a whole decode of the clip), not on another four."""
    pictures = [scene(64, 48, seed=60 + i) for i in range(20)]
    clip = encode_video(pictures, fps=1, gop=3)
    every = frames_of(clip, 30.0, 32)  # more instants than frames: the whole clip, in order
    assert len(every) == 20
    messages = as_images(video_turn("what changes?"), [4])
    with VLMClient(url, protocol=protocol) as client:
        completion = client.generate(
            video_turn("what changes?"), videos=[clip], video_fps=1.0, max_frames=4, max_tokens=12
        )
        assert completion.video_frames == [4]
        assert completion.token_ids == llava_reference.greedy(messages, [every[i] for i in (0, 5, 10, 15)], 12)
        assert completion.token_ids != llava_reference.greedy(messages, every[:4], 12)
        with pytest.raises(InvalidInputError, match=r"max_frames: must lie in \[1, 4\] for this model, got 5"):
            client.generate(video_turn("describe."), videos=[clip], max_frames=5, max_tokens=1)
