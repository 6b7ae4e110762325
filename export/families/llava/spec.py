"""The LLaVA family's served models: image preprocessing, the vision tower and projector (exported), the
python-backend decoder, and the ensemble that chains them, all named after the checkpoint (``llava``,
``llava_preprocess``, ... by default; ``vlm-export model --name`` picks another name).

Pure data (no torch). ``llava_models(fuse_projector=True)`` describes the variant whose ``llava_vision``
graph ends with the projector, so the ensemble has one encoder step fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from client.parameters import GENERATION_PARAMETERS, MAX_STOP_STRINGS
from client.video_parameters import VIDEO_PARAMETERS
from export.families.limits import ENTRY_STEP, STEP_QUEUE, VISION_CPU_BATCH, image_limits, video_limits
from export.families.tags import served_tags
from export.specs import (
    EnsembleSpec,
    EnsembleStep,
    ModelSpec,
    OnnxComponentSpec,
    PythonModelSpec,
    QueuePolicy,
    Resources,
    TensorSpec,
    Tolerance,
)

MAX_IMAGES = 4  # per request; llava-1.5 spends 576 of its 4096 context tokens on each image
ENCODER_MAX_BATCH = 16  # images per vision/projector execution, across requests
MAX_NUM_SEQS = 16  # sequences one engine step runs (vLLM's max_num_seqs)
MAX_WAITING_REQUESTS = 16  # requests waiting for a free sequence slot; more are refused as busy
# vLLM's KV cache on CPU hosts (on a GPU, gpu_memory_utilization sizes it): bench-llava holds about 48 KiB a token,
# so 512 MiB keep 16 sequences of 680 tokens; a full cache makes requests wait or be preempted, never fail.
CPU_KV_CACHE_MIB = 512
GPU_MEMORY_UTILIZATION = 0.85
DEFAULT_MAX_TOKENS = 256  # completion budget when a request names none (cut to what the context allows)
STREAM_INTERVAL_MS = 20  # a sequence's text is sent at most this often (the first piece at once)
# A request's cancellation flag is read at most this often. Read every 20 ms, the reads took 4% of the engine
# thread's time under bench-llava load at concurrency 8 (py-spy).
CANCEL_POLL_INTERVAL_MS = 100
MAX_MESSAGES_BYTES = 65_536
CHECKPOINT_PARAMETER = "checkpoint"  # the decoder's config parameter naming the Hugging Face checkpoint
CHECKPOINT_LINK = "checkpoint"  # default value: a link in the decoder's version folder, made by the export
FAMILY = "llava"
ENSEMBLE = FAMILY  # the default name: what clients call, preprocess -> vision tower (-> projector) -> decoder

PIXELS = TensorSpec("pixel_values", "float32", (3, "image_size", "image_size"))
FEATURES = TensorSpec("image_features", "float32", ("image_tokens", "vision_hidden"))
EMBEDS = TensorSpec("image_embeds", "float32", ("image_tokens", "text_hidden"))
_ENCODER_TOLERANCE = Tolerance(max_abs_diff=1e-4, min_cosine=0.9999)
# Reduced-precision TensorRT engines vs ONNX Runtime. The features are unnormalised hidden states (a real
# tower's outlier channels reach the hundreds), so the absolute bar is loose and the cosine is the real check.
# Set from the formats' precision, not yet measured on a GPU.
_ENCODER_FP16 = Tolerance(max_abs_diff=0.5, min_cosine=0.998)
_ENCODER_BF16 = Tolerance(max_abs_diff=2.0, min_cosine=0.99)
# An int8 ONNX Runtime export vs PyTorch float32: the cosine is the budget; the absolute bar is as loose as
# bfloat16's for the same reason (shapes-llava measured 0.075 on the tower and 0.13 on the projector).
_ENCODER_INT8 = Tolerance(max_abs_diff=2.0, min_cosine=0.99)
# A TensorRT fp8 engine (its QDQ model on ONNX Runtime) vs float32: the same absolute bar (tiny-llava's QDQ tower
# measured 0.20 against the default 0.5), the spec's fp8 cosine.
_ENCODER_FP8 = Tolerance(max_abs_diff=2.0, min_cosine=OnnxComponentSpec.fp8_tolerance.min_cosine)

# One input per generation parameter of the one table (client.parameters), plus the text inputs.
GENERATION_INPUTS = (
    *(TensorSpec(parameter.name, parameter.numpy_dtype, (1,), optional=True) for parameter in GENERATION_PARAMETERS),
    TensorSpec("stop", "bytes", (-1,), optional=True),
    TensorSpec("response_format", "bytes", (1,), optional=True),  # OpenAI's, as JSON
)
MESSAGES = TensorSpec("messages", "bytes", (1,))  # JSON: [{"role": ..., "content": str | [items]}, ...]
IMAGES = TensorSpec("image", "bytes", (-1,))
# Encoded videos and their sampling (client.video_parameters); a request with videos may have no image.
VIDEO_INPUTS = (
    TensorSpec("video", "bytes", (-1,), optional=True),
    *(TensorSpec(parameter.name, parameter.numpy_dtype, (1,), optional=True) for parameter in VIDEO_PARAMETERS),
)
# Frames each video gave, in the request's order: from the preprocess step to the decoder (sampled_frames), and in
# the decoder's final response (video_frames).
SAMPLED_FRAMES = TensorSpec("sampled_frames", "int32", (-1,))
VIDEO_FRAMES = TensorSpec("video_frames", "int32", (-1,))

# Streamed responses carry only ``text_output`` (the new text); the final one carries the rest.
GENERATION_OUTPUTS = (
    TensorSpec("text_output", "bytes", (1,)),
    TensorSpec("finish_reason", "bytes", (1,)),
    TensorSpec("prompt_tokens", "int32", (1,)),
    TensorSpec("completion_tokens", "int32", (1,)),
    TensorSpec("token_ids", "int32", (-1,)),
    TensorSpec("logprobs", "float32", (-1,)),
    TensorSpec("tokens", "bytes", (-1,)),  # the text each completion token added ("" mid-character and for EOS)
    TensorSpec("confidence", "float32", (1,)),
    # [completion tokens, top_logprobs]: the likeliest tokens at each step and their logprobs, when the request
    # asked for top_logprobs
    TensorSpec("alternative_ids", "int32", (-1, -1)),
    TensorSpec("alternative_logprobs", "float32", (-1, -1)),
    TensorSpec("alternative_tokens", "bytes", (-1, -1)),
    VIDEO_FRAMES,  # how many frames of each video the model saw (empty without videos)
)

# The decoder's parameters (serving/generation/vllm_engine.py reads them).
DECODER_PARAMETERS = {
    CHECKPOINT_PARAMETER: CHECKPOINT_LINK,
    "max_images": str(MAX_IMAGES),
    "max_num_seqs": str(MAX_NUM_SEQS),
    "max_waiting_requests": str(MAX_WAITING_REQUESTS),
    "max_model_len": "0",  # 0: the checkpoint's context length
    "cpu_kv_cache_mib": str(CPU_KV_CACHE_MIB),
    "gpu_memory_utilization": str(GPU_MEMORY_UTILIZATION),
    "enable_chunked_prefill": "true",
    "enable_prefix_caching": "true",
    "tensor_parallel_size": "1",  # GPUs one engine spans
    # auto: eager on CPU (torch.compile tripled the engine's start, 55 s vs 17 s on tiny-llava), CUDA graphs
    # on a GPU.
    "enforce_eager": "auto",
    "default_max_tokens": str(DEFAULT_MAX_TOKENS),
    "max_stop_strings": str(MAX_STOP_STRINGS),
    "max_messages_bytes": str(MAX_MESSAGES_BYTES),
    "dtype": "auto",  # float32 on CPU (exact parity with Hugging Face), vLLM's auto on a GPU; or a dtype
    # Inputs stay where the producer left them: the projector's embeddings on the GPU (read via DLPack).
    "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
    "stream_interval_ms": str(STREAM_INTERVAL_MS),
    "cancel_poll_interval_ms": str(CANCEL_POLL_INTERVAL_MS),
}


# The response cache keys on the whole request (all its images), so a repeated image set is not re-encoded.
# Triton 2.51 caches a python model's error response as an empty success, so a cached encoder answers
# non-finite values with non-finite features instead of an error (the decoder rejects those by name).
def vlm_encoder(
    name: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    cpu_batch: int | None = None,
    max_batch: int = ENCODER_MAX_BATCH,
) -> OnnxComponentSpec:
    """A VLM's exported vision tower or projector (LLaVA-NeXT's too)."""
    return OnnxComponentSpec(
        name=name,
        inputs=inputs,
        outputs=outputs,
        max_batch_size=max_batch,
        response_cache=True,
        queue=QueuePolicy(max_queue_size=max_batch, timeout_us=10_000_000),
        tolerance=_ENCODER_TOLERANCE,
        fp16_tolerance=_ENCODER_FP16,
        bf16_tolerance=_ENCODER_BF16,
        int8_tolerance=_ENCODER_INT8,
        fp8_tolerance=_ENCODER_FP8,
        resources=Resources(instance_count=1, intra_op_threads=2, cpu_batch=cpu_batch),
        parity_batch_sizes=(1, 3, max_batch),
    )


@dataclass(frozen=True)
class LlavaComponents:
    """The models of one LLaVA checkpoint, named ``<name>_preprocess``, ``<name>_vision``, ... with the ensemble
    ``<name>`` that clients call; ``vision_fused`` is the vision tower's variant that ends with the projector."""

    name: str
    preprocess: PythonModelSpec
    vision: OnnxComponentSpec
    projector: OnnxComponentSpec
    vision_fused: OnnxComponentSpec
    decoder: PythonModelSpec

    def ensemble(self, fuse_projector: bool) -> EnsembleSpec:
        preprocess, vision, projector = self.preprocess.name, self.vision.name, self.projector.name
        preprocess_inputs = {t.name: t.name for t in self.preprocess.inputs}
        preprocess_outputs = {t.name: t.name for t in self.preprocess.outputs}
        encoder_steps = [EnsembleStep(preprocess, preprocess_inputs, preprocess_outputs)]
        if fuse_projector:
            encoder_steps.append(
                EnsembleStep(vision, {"pixel_values": "pixel_values"}, {"image_embeds": "image_embeds"})
            )
        else:
            encoder_steps += [
                EnsembleStep(vision, {"pixel_values": "pixel_values"}, {"image_features": "image_features"}),
                EnsembleStep(projector, {"image_features": "image_features"}, {"image_embeds": "image_embeds"}),
            ]
        passthrough = {t.name: t.name for t in (MESSAGES, *GENERATION_INPUTS)}
        if SAMPLED_FRAMES in self.preprocess.outputs:
            passthrough[SAMPLED_FRAMES.name] = SAMPLED_FRAMES.name
        decoder_step = EnsembleStep(
            self.decoder.name,
            {**passthrough, "image_embeds": "image_embeds"},
            {t.name: t.name for t in GENERATION_OUTPUTS},
        )
        return EnsembleSpec(
            name=self.name,
            inputs=(*self.preprocess.inputs, MESSAGES, *GENERATION_INPUTS),
            outputs=GENERATION_OUTPUTS,
            steps=(*encoder_steps, decoder_step),
            # Text-only turns and cancellations go to the decoder itself (client.generation).
            parameters=served_tags(FAMILY, self.name, "chat", probe="chat", text_model=self.decoder.name),
        )

    def models(self, fuse_projector: bool) -> tuple[ModelSpec, ...]:
        if fuse_projector:
            return (self.preprocess, self.vision_fused, self.decoder, self.ensemble(fuse_projector=True))
        return (self.preprocess, self.vision, self.projector, self.decoder, self.ensemble(fuse_projector=False))


def image_preprocess(name: str) -> PythonModelSpec:
    """A LLaVA-style preprocess step for images only (LLaVA-NeXT's starts from it)."""
    return PythonModelSpec(
        name=f"{name}_preprocess",
        inputs=(IMAGES,),
        outputs=(TensorSpec("pixel_values", "float32", (-1, 3, "image_size", "image_size")),),
        entry_point="serving.triton_models.image_preprocess:ImagePreprocess",
        resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL in export/families/limits.py
        queue=STEP_QUEUE,
        parameters=image_limits(MAX_IMAGES),
    )


@cache  # one set of specs per name: the default name's specs are the same objects wherever they are asked for
def llava_components(name: str) -> LlavaComponents:
    """The models of the LLaVA checkpoint ``name`` (``vlm-export model --name``; default ``llava``)."""
    images_only = image_preprocess(name)
    # Videos' sampled frames go through the tower as images; at most MAX_IMAGES frames and images in all.
    preprocess = replace(
        images_only,
        inputs=(replace(IMAGES, optional=True), *VIDEO_INPUTS),
        outputs=(*images_only.outputs, SAMPLED_FRAMES),
        entry_point="serving.triton_models.video_preprocess:VideoFramesPreprocess",
        parameters={**images_only.parameters, **video_limits(MAX_IMAGES)},
    )
    # Triton 2.51 does not pass a cancelled ensemble request's cancellation on to the decoder it is running in,
    # so clients stop a stream by id: a request with only ``cancel`` (the id of the request to stop) answers
    # ``cancelled`` (how many running requests had that id). Without ``cancel``, ``messages`` is required.
    decoder = PythonModelSpec(
        name=f"{name}_decoder",
        inputs=(
            TensorSpec("messages", "bytes", (1,), optional=True),
            TensorSpec("image_embeds", "float32", (-1, "image_tokens", "text_hidden"), optional=True),
            replace(SAMPLED_FRAMES, optional=True),  # the last sum(sampled_frames) images are videos' frames
            *GENERATION_INPUTS,
            TensorSpec("cancel", "bytes", (1,), optional=True),
        ),
        outputs=(*GENERATION_OUTPUTS, TensorSpec("cancelled", "int32", (1,))),
        entry_point="serving.triton_models.llava_decoder:LlavaDecoder",
        decoupled=True,
        parameters=dict(DECODER_PARAMETERS),
    )
    return LlavaComponents(
        name=name,
        preprocess=preprocess,
        vision=vlm_encoder(f"{name}_vision", (PIXELS,), (FEATURES,), cpu_batch=VISION_CPU_BATCH),
        projector=vlm_encoder(f"{name}_projector", (FEATURES,), (EMBEDS,)),
        vision_fused=vlm_encoder(f"{name}_vision", (PIXELS,), (EMBEDS,), cpu_batch=VISION_CPU_BATCH),
        decoder=decoder,
    )


def llava_models(fuse_projector: bool = False, name: str = ENSEMBLE) -> tuple[ModelSpec, ...]:
    return llava_components(name).models(fuse_projector)


LLAVA = llava_components(ENSEMBLE)
LLAVA_PREPROCESS = LLAVA.preprocess
LLAVA_VISION = LLAVA.vision
LLAVA_PROJECTOR = LLAVA.projector
LLAVA_VISION_FUSED = LLAVA.vision_fused
LLAVA_DECODER = LLAVA.decoder
LLAVA_MODELS = llava_models()
