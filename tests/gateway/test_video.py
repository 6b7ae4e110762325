"""Videos through the real gateway and server: an OpenAI ``video_url`` part (a data URL or an allowed http URL) or a
clip given as its frames is answered as the server answers the same clip, and every bad video gets a 400 naming the
part and the limit, with both processes serving afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction

import httpx
import numpy as np
import openai
import pytest

from client import VLMClient
from client.video_parameters import MAX_FRAME_PIXELS, MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from tests.gateway.conftest import API_KEY, data_url
from tests.gateway.processes import ImageServer
from tests.images import encode, scene
from tests.videos import coloured_frames, encode_video, repeated_keyframe_video

VIDEO_PARAM = "messages[0].content[0].video_url.url"


def short_clip() -> bytes:
    return encode_video([scene(64, 48, seed=70 + i) for i in range(4)], fps=1)  # 4 frames at 1 fps


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}


def chat_body(parts: list[dict], **extra: object) -> dict:
    content = [*parts, {"type": "text", "text": "what happens?"}]
    return {"model": "llava", "messages": [{"role": "user", "content": content}], "max_tokens": 12, **extra}


def video_turn() -> list[dict]:
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens?"}]}]


@pytest.fixture(scope="module")
def video_server() -> Iterator[ImageServer]:
    routes = {"/clip.mp4": (200, {"Content-Type": "video/mp4"}, short_clip())}
    with ImageServer(routes) as running:
        yield running


def test_a_video_url_part_is_answered_as_the_server_answers_the_clip(sdk: openai.OpenAI, server: TritonServer) -> None:
    clip = short_clip()
    reply = sdk.chat.completions.create(
        model="llava",
        messages=chat_body([video_part(data_url(clip, "video/mp4"))])["messages"],
        max_tokens=12,
        logprobs=True,
        extra_body={"video_fps": 1.0},
    )
    with VLMClient(server.grpc_url) as direct:
        expected = direct.generate(video_turn(), videos=[clip], video_fps=1.0, max_tokens=12)
    assert expected.video_frames == [4]
    assert reply.model_extra is not None and reply.model_extra["video_frames"] == [4]
    assert reply.choices[0].message.content == expected.text
    assert [t.token for t in reply.choices[0].logprobs.content] == expected.tokens
    assert reply.usage.prompt_tokens == expected.prompt_tokens


def test_an_allowed_http_url_and_a_list_of_frames_are_answered(
    http: httpx.Client, server: TritonServer, video_server: ImageServer
) -> None:
    fetched = http.post("/v1/chat/completions", json=chat_body([video_part(video_server.url("/clip.mp4"))]))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["video_frames"] == [4]
    frames = [encode(scene(64, 48, seed=80 + i)) for i in range(2)]
    as_frames = http.post(
        "/v1/chat/completions", json=chat_body([{"type": "video", "video": [data_url(f) for f in frames]}])
    )
    assert as_frames.status_code == 200, as_frames.text
    messages = [{"role": "user", "content": [{"type": "image"}] * 2 + [{"type": "text", "text": "what happens?"}]}]
    with VLMClient(server.grpc_url) as direct:
        assert (
            as_frames.json()["choices"][0]["message"]["content"]
            == direct.generate(messages, frames, max_tokens=12).text
        )
    assert as_frames.json()["video_frames"] is None  # frames are images: nothing was sampled


def bad_videos() -> dict[str, tuple[bytes, str]]:
    corrupt = bytearray(encode_video(coloured_frames(20)))
    corrupt[600:1400] = bytes(800)
    whole = encode_video(coloured_frames(24), codec="libx264", container="matroska", gop=4)
    return {
        "hours long": (repeated_keyframe_video(3, Fraction(1, 1), 3600), f"the limit is {MAX_VIDEO_SECONDS:g} s"),
        "100,000 frames": (
            repeated_keyframe_video(100_000, Fraction(1, 1000), 1),
            f"video declares 100000 frames, the limit is {MAX_VIDEO_FRAMES}",
        ),
        "8K frames": (
            encode_video([np.zeros((4320, 7680, 3), dtype=np.uint8)]),
            f"frames are 7680x4320 = 33177600 pixels, the limit is {MAX_FRAME_PIXELS}",
        ),
        "truncated": (whole[: len(whole) // 2], "video is truncated"),
        "corrupt": (bytes(corrupt), "corrupt"),
        "unsupported codec": (
            encode_video(coloured_frames(4), codec="ffv1", container="matroska"),
            "video codec 'ffv1' is not supported",
        ),
    }


def test_each_bad_video_is_a_400_naming_its_part_and_limit_and_both_processes_serve_on(
    gateway: GatewayProcess, http: httpx.Client, server: TritonServer
) -> None:
    """While a good clip's answer streams through the same gateway, untouched."""
    streamed: dict[str, str] = {}

    def stream() -> None:
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
        with sdk:
            chunks = sdk.chat.completions.create(
                model="llava",
                messages=chat_body([video_part(data_url(short_clip(), "video/mp4"))])["messages"],
                max_tokens=120,
                stream=True,
            )
            streamed["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    background = threading.Thread(target=stream)
    background.start()
    for case, (clip, reason) in bad_videos().items():
        reply = http.post("/v1/chat/completions", json=chat_body([video_part(data_url(clip, "video/mp4"))]))
        assert reply.status_code == 400, (case, reply.text)
        error = reply.json()["error"]
        assert error["param"] == VIDEO_PARAM and reason in error["message"], (case, error)
    image = encode(scene(seed=91))
    as_video = http.post("/v1/chat/completions", json=chat_body([video_part(data_url(image, "video/mp4"))]))
    assert as_video.status_code == 400 and as_video.json()["error"]["param"] == VIDEO_PARAM
    assert "is an image, not a video" in as_video.json()["error"]["message"]
    image_part = {"type": "image_url", "image_url": {"url": data_url(short_clip(), "image/png")}}
    as_image = http.post("/v1/chat/completions", json=chat_body([image_part]))
    assert as_image.status_code == 400 and "is a video, not an image" in as_image.json()["error"]["message"]
    too_many = http.post(
        "/v1/chat/completions", json=chat_body([video_part(data_url(short_clip(), "video/mp4"))], max_frames=5)
    )
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_frames", too_many.text
    assert "must lie in [1, 4] for this model" in too_many.json()["error"]["message"]
    no_rate = http.post(
        "/v1/chat/completions", json=chat_body([video_part(data_url(short_clip(), "video/mp4"))], video_fps=0)
    )
    assert no_rate.status_code == 400 and no_rate.json()["error"]["param"] == "video_fps"
    assert http.get("/health").status_code == 200 and http.get("/ready").status_code == 200
    good = http.post("/v1/chat/completions", json=chat_body([video_part(data_url(short_clip(), "video/mp4"))]))
    assert good.status_code == 200 and good.json()["video_frames"] == [4]
    background.join(timeout=300)
    with VLMClient(server.grpc_url) as direct:
        assert direct.embed_texts(["triton is up"]).shape[0] == 1
        assert streamed["text"] == direct.generate(video_turn(), videos=[short_clip()], max_tokens=120).text
