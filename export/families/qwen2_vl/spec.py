"""The Qwen2-VL family's served models, named after the checkpoint (``qwen2_vl`` by default; ``vlm-export model
--name`` picks another):

- ``<name>_preprocess``: encoded images -> every image's merged patches, one image after another
  ``[patches, 3 * 2 * 14 * 14]``, and each image's grid ``[images, (t, h, w)]`` (``serving.smart_resize``), within
  the checkpoint's pixel budget or the request's ``min_pixels`` / ``max_pixels`` (``serving.pixel_budget``).
- ``<name>_vision``: the exported vision tower with its 2x2 patch merger (ONNX Runtime) -> the images' embeddings
  ``[tokens, hidden]``, one image after another; the grids say where each image and frame begins.
- ``<name>_decoder``: LLaVA's decoder, handed the embeddings and grids (``image_input: grids``), which vLLM takes as
  Qwen2-VL's ``{"image_embeds", "image_grid_thw"}`` and places with M-RoPE.
- the ensemble ``<name>`` chains them.

Pure data (no torch).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from client.pixel_parameters import PIXEL_PARAMETERS
from client.video_parameters import MAX_SAMPLED_FRAMES
from export.families.limits import ENTRY_STEP, STEP_QUEUE, image_limits, pixel_limits, video_limits
from export.families.llava.spec import (
    GENERATION_INPUTS,
    GENERATION_OUTPUTS,
    MAX_IMAGES,
    SAMPLED_FRAMES,
    VIDEO_INPUTS,
    llava_components,
)
from export.families.tags import served_tags
from export.specs import EnsembleSpec, EnsembleStep, ModelSpec, PythonModelSpec, Resources, TensorSpec
from serving.smart_resize import MAX_ASPECT_RATIO

FAMILY = "qwen2_vl"
MERGE_SIZE = 2  # the patch merger's side: a token is 2 x 2 patches (the decoder's image_merge_size)

_IMAGE = TensorSpec("image", "bytes", (-1,))
_MESSAGES = TensorSpec("messages", "bytes", (1,))
_PATCHES = TensorSpec("pixel_values", "float32", (-1, -1))  # [patches, channels * temporal * patch^2]
_GRIDS = TensorSpec("image_grid_thw", "int64", (-1, 3))  # [images + videos, (frames, rows, columns)] in patches
# Seconds per frame group of each video (temporal patch / the kept frames' rate): Qwen2.5-VL's time positions.
_SECONDS = TensorSpec("video_second_per_grid", "float32", (-1,))
_VIDEO_TENSORS = {SAMPLED_FRAMES.name: SAMPLED_FRAMES.name, _SECONDS.name: _SECONDS.name}
_EMBEDS = TensorSpec("image_embeds", "float32", (-1, -1))  # [tokens, hidden], one image after another
_GRIDS_MAP = {"image_grid_thw": "image_grid_thw"}
_IMAGE_TENSORS = {"image_embeds": "image_embeds", **_GRIDS_MAP}
# A request's pixel budget for its images and video frames (client.pixel_parameters); absent: the checkpoint's.
PIXEL_INPUTS = tuple(TensorSpec(p.name, p.numpy_dtype, (1,), optional=True) for p in PIXEL_PARAMETERS)
# The tower runs a frame group per call on one thread: with one instance it was the bottleneck at 8 clients (requests
# queued 2.1-3.1 s before it while the decoder idled); two use a second core when the decoder leaves it free, and a
# full queue never stalls a lone instance (SINGLE_INSTANCE_STALL in export/families/limits.py). bench-qwen2-vl, mixed
# images up to 1080p, 8 clients, output tokens/s against vllm serve in one run each: README, Benchmarks.
VISION_RESOURCES = Resources(instance_count=2)


def qwen2_vl_models(name: str = FAMILY) -> tuple[ModelSpec, ...]:
    return patch_models(FAMILY, name)


@cache  # one set of specs per family and name
def patch_models(family: str, name: str, video_seconds: bool = False) -> tuple[ModelSpec, ...]:
    """``<name>_preprocess``, ``<name>_vision``, ``<name>_decoder`` and the ensemble ``<name>`` of a Qwen2-VL-style
    checkpoint of ``family`` (Qwen2.5-VL's are the same models, tagged as its own). ``video_seconds``: the model
    places video frames by time (Qwen2.5-VL), so the decoder hands vLLM each video's seconds per frame group."""
    preprocess = PythonModelSpec(
        name=f"{name}_preprocess",
        inputs=(replace(_IMAGE, optional=True), *VIDEO_INPUTS, *PIXEL_INPUTS),
        outputs=(_PATCHES, _GRIDS, SAMPLED_FRAMES, _SECONDS),
        entry_point="serving.triton_models.patch_preprocess:PatchPreprocess",
        resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL in export/families/limits.py
        queue=STEP_QUEUE,
        # The image processor takes images up to 200:1 as they are (LLaVA's square towers crop past 20:1 first); more
        # elongated ones are centre-cropped to 200:1, which it would refuse.
        # Videos go natively (video embeddings and grids), not as images: their frames count against max_frames only.
        parameters={
            **image_limits(MAX_IMAGES),
            "max_aspect_ratio": str(MAX_ASPECT_RATIO),
            **video_limits(MAX_SAMPLED_FRAMES),
            **pixel_limits(),
        },
    )
    vision = PythonModelSpec(
        name=f"{name}_vision",
        inputs=(_PATCHES, _GRIDS),
        outputs=(_EMBEDS,),
        entry_point="serving.triton_models.patch_encoder:PatchEncoder",
        resources=VISION_RESOURCES,
        queue=STEP_QUEUE,
        parameters={"merge_size": str(MERGE_SIZE)},
        onnx_on_gpu=True,  # TensorRT through ONNX Runtime on the GPU targets, profiled by the export's patch range
    )
    llava_decoder = llava_components(name).decoder
    decoder = replace(
        llava_decoder,
        inputs=(
            *(tensor for tensor in llava_decoder.inputs if tensor.name != "image_embeds"),
            replace(_EMBEDS, optional=True),
            replace(_GRIDS, optional=True),
            replace(_SECONDS, optional=True),
        ),
        # video_input "grids": the last len(sampled_frames) grids are videos, handed to vLLM as video embeddings.
        parameters={
            **llava_decoder.parameters,
            "image_input": "grids",
            "video_input": "grids",
            "video_seconds": "true" if video_seconds else "false",
            "image_merge_size": str(MERGE_SIZE),
        },
    )
    passthrough = {t.name: t.name for t in (_MESSAGES, *GENERATION_INPUTS)}
    ensemble = EnsembleSpec(
        name=name,
        inputs=(*preprocess.inputs, _MESSAGES, *GENERATION_INPUTS),
        outputs=GENERATION_OUTPUTS,
        steps=(
            EnsembleStep(
                preprocess.name,
                {t.name: t.name for t in preprocess.inputs},
                {"pixel_values": "pixel_values", **_GRIDS_MAP, **_VIDEO_TENSORS},
            ),
            EnsembleStep(vision.name, {"pixel_values": "pixel_values", **_GRIDS_MAP}, {"image_embeds": "image_embeds"}),
            EnsembleStep(
                decoder.name,
                {**passthrough, **_IMAGE_TENSORS, **_VIDEO_TENSORS},
                {t.name: t.name for t in GENERATION_OUTPUTS},
            ),
        ),
        # Text-only turns and cancellations go to the decoder itself (client.generation).
        parameters=served_tags(family, name, "chat", probe="chat", text_model=decoder.name),
    )
    return (preprocess, vision, decoder, ensemble)
