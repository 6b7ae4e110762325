"""The CLIP family's served models: two exported encoders, three python models and three ensembles.

Pure data (no torch): the Triton configs are generated from these specs, and the export reads the same
specs for ONNX names, dynamic axes and parity tolerances.
"""

from __future__ import annotations

from export.specs import (
    DynamicAxis,
    EnsembleSpec,
    EnsembleStep,
    OnnxComponentSpec,
    PythonModelSpec,
    QueuePolicy,
    Resources,
    TensorSpec,
    Tolerance,
)

VISION_MAX_BATCH = 32
TEXT_MAX_BATCH = 64
MAX_IMAGE_PIXELS = 36_000_000  # per image, checked from the header before any pixel is decoded
MAX_REQUEST_PIXELS = 128_000_000  # all images of one request: bounds decode time (about 10 phone photos)
MAX_ASPECT_RATIO = 20  # wider images are centre-cropped to this first; CLIP crops to the centre anyway
MAX_TEXT_BYTES = 16_384  # CLIP reads 77 tokens; this only bounds tokenizer work on absurd inputs
SEQUENCE = "sequence"  # a text's length in tokens: each request's longest text, up to the context length
# The length TensorRT tunes the text engine for: captions and zero-shot prompts ("a photo of a dog") are mostly
# under 16 tokens. Chosen from the benchmark's captions, not yet measured on a GPU.
TEXT_OPT_TOKENS = 16
# The text encoder's parity checks (ONNX export, TensorRT engines): batches of these, each padded to its longest,
# so the dynamic sequence axis is checked at several lengths up to the whole context (the last one is truncated).
PARITY_SENTENCES = (
    "a photo of a red circle",
    "x",
    "a small blue square above a large green triangle, next to a tall tree on the left",
    "two dogs",
    "a very long caption " + "about shapes " * 60,
)

# Admission control, sized for the 2-core hosts the embedded configs target: a python step admits one request per
# client of 32 concurrent ones (a step takes milliseconds a request, and 8 refused 25 concurrent text clients on
# CI's machine), an encoder one full batch behind the one it runs. The timeouts bound a wait behind a slow or stuck
# instance. Excess is refused at once and clients back off (client.retry).
STEP_QUEUE = QueuePolicy(max_queue_size=32, timeout_us=10_000_000)
# SINGLE_INSTANCE_STALL: Triton 2.51 stalls a one-instance python model whose queue is full. Flooded at 700
# requests/s, one clip_preprocess instance served 12-16 requests/s (146/s at 150 requests/s) with its stub idle and
# admitted requests waiting 3-4 s in its queue: a rejected enqueue never wakes the batcher, which then waits for a
# free instance without being told of one. Two instances served 417/s under the same flood. So each entry step,
# the one whose queue fills first under overload, runs two instances.
ENTRY_STEP = Resources(instance_count=2)
_IMAGE_BYTES = TensorSpec("image", "bytes", (-1,))
_TEXT_BYTES = TensorSpec("text", "bytes", (-1,))
_PIXELS = ("float32", (3, "image_size", "image_size"))
_EMBED = ("float32", ("embed_dim",))
# Reduced-precision TensorRT engines vs ONNX Runtime on L2-normalised embeddings (every value lies in [-1, 1]):
# float16 keeps about 3 significant digits, bfloat16 about 2. Set from the formats, not yet measured on a GPU.
_FP16 = Tolerance(max_abs_diff=1e-2, min_cosine=0.999)
_BF16 = Tolerance(max_abs_diff=4e-2, min_cosine=0.995)

# Response caching is on the ensembles, not on the encoders: Triton 2.51 caches a python model's error
# response as an empty success, so a repeated bad request sent straight to a cached encoder would get an
# answer without outputs instead of its error. The encoders validate values (NaN, token ids out of range);
# the ensembles' caches keep errors out.
CLIP_VISION = OnnxComponentSpec(
    name="clip_vision",
    inputs=(TensorSpec("pixel_values", *_PIXELS),),
    outputs=(TensorSpec("image_embeds", *_EMBED),),
    max_batch_size=VISION_MAX_BATCH,
    queue=QueuePolicy(max_queue_size=VISION_MAX_BATCH, timeout_us=10_000_000),
    tolerance=Tolerance(max_abs_diff=1e-4, min_cosine=0.9999),
    fp16_tolerance=_FP16,
    bf16_tolerance=_BF16,
    resources=Resources(instance_count=1, intra_op_threads=2),
    parity_batch_sizes=(1, 3, VISION_MAX_BATCH),
)

CLIP_TEXT = OnnxComponentSpec(
    name="clip_text",
    inputs=(
        TensorSpec("input_ids", "int64", (SEQUENCE,), value_range=(0, "max_token_id"), pad_value="pad_token_id"),
        TensorSpec("attention_mask", "int64", (SEQUENCE,), value_range=(0, 1), pad_value=0),
    ),
    dynamic_axes=(DynamicAxis(SEQUENCE, max="context_length", opt=TEXT_OPT_TOKENS),),
    outputs=(TensorSpec("text_embeds", *_EMBED),),
    max_batch_size=TEXT_MAX_BATCH,
    queue=QueuePolicy(max_queue_size=TEXT_MAX_BATCH, timeout_us=10_000_000),
    tolerance=Tolerance(max_abs_diff=1e-4, min_cosine=0.9999),
    fp16_tolerance=_FP16,
    bf16_tolerance=_BF16,
    # Two threads, as the in-process limit uses: with one, the text encoder's stub was the served path's bottleneck
    # (busy 98% of the time under clip-text load at concurrency 8, py-spy), and two served 1.10x (0.77-1.71) of
    # one's requests/s (two servers, 8 alternating rounds).
    resources=Resources(instance_count=1, intra_op_threads=2),
    # At concurrency 8 batches were 4.3 texts on average, half the clients' requests waiting while the other half
    # ran, and a text cost 13.8 ms against 9.8 in batches of 8. Waiting up to 6 ms for batches of 8 served 88.9
    # requests/s against 78.3 (0.84x and 0.77x the in-process limit, clip-vit-base-patch32); 15 ms served 85.3 and
    # added 15 ms at concurrency 1, where 6 ms kept 0.92x Hugging Face's one-at-a-time rate.
    max_queue_delay_us=6000,
    preferred_batch_sizes=(8, 16, 32),
    parity_batch_sizes=(1, 3, TEXT_MAX_BATCH),
)

# Triton 2.51 loses an ensemble request whose two parallel steps both fail at about the same time, and every later
# gRPC unary inference of the server then hangs (seen with clip_rank: a bad image and a bad text, about one
# request in 200). In clip_rank the image step therefore waits for the tokenizer through ``wait_for``, which it
# ignores: a bad text fails the request before any image step runs, so two steps never fail together.
WAIT_FOR = TensorSpec("wait_for", "int64", (-1, -1), optional=True)

CLIP_PREPROCESS = PythonModelSpec(
    name="clip_preprocess",
    inputs=(_IMAGE_BYTES, WAIT_FOR),
    outputs=(TensorSpec("pixel_values", "float32", (-1, 3, "image_size", "image_size")),),
    entry_point="serving.triton_models.image_preprocess:ImagePreprocess",
    # Two instances, though one is as fast (at concurrency 8 one served 0.85x and 1.00x of two, within the noise)
    # and a second holds 50 MiB more: SINGLE_INSTANCE_STALL.
    resources=ENTRY_STEP,
    queue=STEP_QUEUE,
    parameters={
        "max_images": str(VISION_MAX_BATCH),
        "max_image_pixels": str(MAX_IMAGE_PIXELS),
        "max_request_pixels": str(MAX_REQUEST_PIXELS),
        "max_aspect_ratio": str(MAX_ASPECT_RATIO),
    },
)

CLIP_TOKENIZE = PythonModelSpec(
    name="clip_tokenize",
    inputs=(_TEXT_BYTES,),
    outputs=(
        TensorSpec("input_ids", "int64", (-1, SEQUENCE)),
        TensorSpec("attention_mask", "int64", (-1, SEQUENCE)),
    ),
    entry_point="serving.triton_models.clip_tokenize:ClipTokenize",
    resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL
    queue=STEP_QUEUE,
    parameters={
        "max_texts": str(TEXT_MAX_BATCH),
        "max_text_bytes": str(MAX_TEXT_BYTES),
    },
)

CLIP_SIMILARITY = PythonModelSpec(
    name="clip_similarity",
    inputs=(
        TensorSpec("image_embeds", "float32", (-1, "embed_dim")),
        TensorSpec("text_embeds", "float32", (-1, "embed_dim")),
    ),
    outputs=(TensorSpec("logits_per_image", "float32", (-1, -1)), TensorSpec("probs", "float32", (-1, -1))),
    entry_point="serving.triton_models.clip_similarity:ClipSimilarity",
    queue=QueuePolicy(max_queue_size=16, timeout_us=10_000_000),  # its requests did their work: room for more
    parameters={"max_images": str(VISION_MAX_BATCH), "max_texts": str(TEXT_MAX_BATCH)},
)

_PREPROCESS_STEP = EnsembleStep("clip_preprocess", {"image": "image"}, {"pixel_values": "pixel_values"})
_VISION_STEP = EnsembleStep("clip_vision", {"pixel_values": "pixel_values"}, {"image_embeds": "image_embeds"})
_TOKENIZE_STEP = EnsembleStep(
    "clip_tokenize",
    {"text": "text"},
    {"input_ids": "input_ids", "attention_mask": "attention_mask"},
)
_TEXT_STEP = EnsembleStep(
    "clip_text",
    {"input_ids": "input_ids", "attention_mask": "attention_mask"},
    {"text_embeds": "text_embeds"},
)

CLIP_IMAGE_EMBED = EnsembleSpec(
    name="clip_image_embed",
    inputs=(_IMAGE_BYTES,),
    outputs=(TensorSpec("image_embeds", "float32", (-1, "embed_dim")),),
    response_cache=True,
    steps=(_PREPROCESS_STEP, _VISION_STEP),
)

# The tokenizer's attention mask is an output too: its row sums are the tokens each text was read as (start and
# end tokens included, after truncation), the usage an embeddings API reports.
CLIP_TEXT_EMBED = EnsembleSpec(
    name="clip_text_embed",
    inputs=(_TEXT_BYTES,),
    outputs=(
        TensorSpec("text_embeds", "float32", (-1, "embed_dim")),
        TensorSpec("attention_mask", "int64", (-1, "context_length")),
    ),
    response_cache=True,
    steps=(_TOKENIZE_STEP, _TEXT_STEP),
)

CLIP_RANK = EnsembleSpec(
    name="clip_rank",
    inputs=(_IMAGE_BYTES, _TEXT_BYTES),
    outputs=CLIP_SIMILARITY.outputs,
    response_cache=True,
    steps=(
        _TOKENIZE_STEP,
        EnsembleStep("clip_preprocess", {"image": "image", "wait_for": "attention_mask"}, _PREPROCESS_STEP.output_map),
        _VISION_STEP,
        _TEXT_STEP,
        EnsembleStep(
            "clip_similarity",
            {"image_embeds": "image_embeds", "text_embeds": "text_embeds"},
            {"logits_per_image": "logits_per_image", "probs": "probs"},
        ),
    ),
)

CLIP_MODELS = (
    CLIP_PREPROCESS,
    CLIP_VISION,
    CLIP_TOKENIZE,
    CLIP_TEXT,
    CLIP_SIMILARITY,
    CLIP_IMAGE_EMBED,
    CLIP_TEXT_EMBED,
    CLIP_RANK,
)
