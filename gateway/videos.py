"""Videos from a chat request, as encoded bytes for Triton: base64 ``data:`` URLs and allowed http(s) URLs, under
the images' URL policy (gateway/fetch.py) with the videos' byte limit. The gateway reads no frame: Triton's
preprocessing checks the container, codec, duration, frame count and frame size before it decodes (serving/video.py).
An image sent as a video is refused here, by its first bytes."""

from __future__ import annotations

from client.media_kind import looks_like_image
from gateway.errors import invalid
from gateway.fetch import ImageFetcher
from gateway.images import read_url


def check_video(data: bytes, param: str, max_bytes: int) -> bytes:
    if not data:
        raise invalid(param, "the video is empty", "invalid_video")
    if len(data) > max_bytes:
        raise invalid(param, f"the video is {len(data)} bytes, over the limit of {max_bytes}", "video_too_large")
    if looks_like_image(data):
        raise invalid(param, "is an image, not a video; send it as an image_url part", "invalid_video")
    return data


class VideoLoader:
    def __init__(self, fetcher: ImageFetcher, max_bytes: int) -> None:
        self.fetcher = fetcher
        self.max_bytes = max_bytes

    async def load(self, url: str, param: str) -> bytes:
        return check_video(await read_url(self.fetcher, url, param, "video", self.max_bytes), param, self.max_bytes)
