"""``llava_preprocess`` with videos: a request's images, then each video's sampled frames, as the vision tower's
pixel values [images + frames, 3, S, S], and how many frames each video gave (``sampled_frames``).

The frames go through the same processor as images (a LLaVA-family model sees a video as its frames, each an
image). Decoding, limits and the sampling rule are ``serving.video``'s; ``video_fps`` and ``max_frames`` are the
request's (``client.video_parameters``), ``max_frames`` no more than this step's ``max_frames`` parameter, which is
also its default. Images and frames together are at most ``max_images``: each is an image to the decoder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from client.field_errors import FieldRef
from client.video_parameters import MAX_FRAMES, VIDEO_FPS
from serving.errors import InvalidInputError
from serving.generation.params import number_input
from serving.triton_models.image_preprocess import ImagePreprocess
from serving.validators import as_bytes_list
from serving.video import SampledVideo, Sampling, VideoLimits, decode_video


class VideoFramesPreprocess(ImagePreprocess):
    def read_limits(self) -> None:
        super().read_limits()
        self.max_videos = self.int_parameter("max_videos")
        self.max_frames = self.int_parameter("max_frames")
        self.video_limits = VideoLimits(
            max_bytes=self.int_parameter("max_video_bytes"),
            max_seconds=self.int_parameter("max_video_seconds"),
            max_frames=self.int_parameter("max_video_frames"),
            max_frame_pixels=self.int_parameter("max_frame_pixels"),
            max_decode_seconds=self.int_parameter("max_decode_seconds"),
        )

    def video_blobs(self, inputs: dict[str, np.ndarray]) -> list[bytes]:
        """The request's encoded videos, checked for count; a request needs an image or a video."""
        videos = as_bytes_list(inputs["video"]) if "video" in inputs else []
        if not videos and "image" not in inputs:
            raise InvalidInputError("image", "at least one image or video is required, got none")
        if len(videos) > self.max_videos:
            raise InvalidInputError("video", f"at most {self.max_videos} videos per request, got {len(videos)}")
        return videos

    def decode(self, blob: bytes, index: int, sampling: Sampling) -> SampledVideo:
        return decode_video(blob, FieldRef("video", index), sampling, self.video_limits)

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        videos = self.video_blobs(inputs)
        images = list(self.images(inputs)) if "image" in inputs else []
        sampling = self.sampling(inputs)
        frame_counts = []
        for i, blob in enumerate(videos):
            video = self.decode(blob, i, sampling)
            frame_counts.append(len(video.frames))
            images += [Image.fromarray(frame) for frame in video.frames]
            if len(images) > self.max_images:
                raise InvalidInputError(
                    "video",
                    f"the request's images and sampled video frames come to at least {len(images)}, the limit is "
                    f"{self.max_images} (each frame is an image to the model): lower max_frames or video_fps",
                )
        per_image = [self.processor.tensors(image) for image in images]
        outputs = {name: np.stack([tensors[name] for tensors in per_image]) for name in per_image[0]}
        outputs["sampled_frames"] = np.array(frame_counts, dtype=np.int32)
        return outputs

    def sampling(self, inputs: dict[str, np.ndarray]) -> Sampling:
        fps = number_input(inputs, VIDEO_FPS)
        max_frames = number_input(inputs, MAX_FRAMES)
        if max_frames is not None and max_frames > self.max_frames:
            limit = f"must lie in [1, {self.max_frames}] for this model"
            raise InvalidInputError("max_frames", f"{limit}, got {max_frames}")
        return Sampling(
            fps=float(VIDEO_FPS.default if fps is None else fps),
            max_frames=int(self.max_frames if max_frames is None else max_frames),
        )
