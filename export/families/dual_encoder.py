"""The served models of an image-text dual encoder (CLIP, SigLIP, SigLIP2): two exported encoders, three python
models and three ensembles, built from a few family traits (text padding, scoring, pixel layout) so every dual-encoder
family has the same shape and contract.

Pure data (no torch): the Triton configs are generated from these specs, and the export reads the same specs for
ONNX names, dynamic axes and parity tolerances. The numbers below were measured on CLIP; a family that measures
otherwise passes its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

from export.families.limits import ENTRY_STEP, STEP_QUEUE, VISION_CPU_BATCH, image_limits
from export.families.tags import served_tags
from export.specs import (
    DynamicAxis,
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

TextPadding = Literal["longest", "max_length"]
Scoring = Literal["softmax", "sigmoid"]
PixelLayout = Literal["image", "patches"]

VISION_MAX_BATCH = 32
TEXT_MAX_BATCH = 64
MAX_TEXT_BYTES = 16_384  # the towers read tens of tokens; this only bounds tokenizer work on absurd inputs
SEQUENCE = "sequence"  # a text's length in tokens: each request's longest text, up to the context length
# The length TensorRT tunes the text engine for: captions and zero-shot prompts ("a photo of a dog") are mostly
# under 16 tokens. Chosen from the benchmark's captions, not yet measured on a GPU.
TEXT_OPT_TOKENS = 16
# The text encoder's parity checks (ONNX export, TensorRT engines): batches of these, each padded as served, so a
# dynamic sequence axis is checked at several lengths up to the whole context (the last one is truncated).
PARITY_SENTENCES = (
    "a photo of a red circle",
    "x",
    "a small blue square above a large green triangle, next to a tall tree on the left",
    "two dogs",
    "a very long caption " + "about shapes " * 60,
)
_IMAGE_BYTES = TensorSpec("image", "bytes", (-1,))
_TEXT_BYTES = TensorSpec("text", "bytes", (-1,))
# Each image as the vision tower takes it: a square of pixels (CLIP, SigLIP), or NaFlex patches (SigLIP2): up to
# max_num_patches patches of patch_dim values each, which of them are the image's, and its patch grid (rows,
# columns), which sizes its position embeddings.
VISION_INPUTS: dict[PixelLayout, tuple[TensorSpec, ...]] = {
    "image": (TensorSpec("pixel_values", "float32", (3, "image_size", "image_size")),),
    "patches": (
        TensorSpec("pixel_values", "float32", ("max_num_patches", "patch_dim")),
        TensorSpec("pixel_attention_mask", "int32", ("max_num_patches",), value_range=(0, 1)),
        TensorSpec("spatial_shapes", "int64", (2,), value_range=(1, "max_num_patches")),
    ),
}
# The preprocess step's parameter that says which layout it makes (absent: ``image``).
PIXEL_LAYOUT_PARAMETERS: dict[PixelLayout, dict[str, str]] = {"image": {}, "patches": {"pixel_layout": "patches"}}
_EMBED = ("float32", ("embed_dim",))
# Reduced-precision TensorRT engines vs ONNX Runtime on L2-normalised embeddings (every value lies in [-1, 1]):
# float16 keeps about 3 significant digits, bfloat16 about 2. Set from the formats, not yet measured on a GPU.
_FP16 = Tolerance(max_abs_diff=1e-2, min_cosine=0.999)
_BF16 = Tolerance(max_abs_diff=4e-2, min_cosine=0.995)
# Triton 2.51 loses an ensemble request whose two parallel steps both fail at about the same time, and every later
# gRPC unary inference of the server then hangs (seen with clip_rank: a bad image and a bad text, about one
# request in 200). In the rank ensemble the image step therefore waits for the tokenizer through ``wait_for``,
# which it ignores: a bad text fails the request before any image step runs, so two steps never fail together.
WAIT_FOR = TensorSpec("wait_for", "int64", (-1, -1), optional=True)


@dataclass(frozen=True)
class DualEncoderModels:
    preprocess: PythonModelSpec
    vision: OnnxComponentSpec
    tokenize: PythonModelSpec
    text: OnnxComponentSpec
    similarity: PythonModelSpec
    image_embed: EnsembleSpec
    text_embed: EnsembleSpec
    rank: EnsembleSpec

    def all(self) -> tuple[ModelSpec, ...]:
        return (
            self.preprocess,
            self.vision,
            self.tokenize,
            self.text,
            self.similarity,
            self.image_embed,
            self.text_embed,
            self.rank,
        )


def _text_encoder(name: str, padding: TextPadding) -> OnnxComponentSpec:
    """``longest``: each request padded to its longest text, the sequence axis dynamic (CLIP pools at the end-of-text
    token, so padding after it changes nothing). ``max_length``: every text padded to the whole context, as a family
    that pools the last position needs (SigLIP), the axis fixed."""
    dynamic = padding == "longest"
    length = SEQUENCE if dynamic else "context_length"
    pad_ids, pad_mask = ("pad_token_id", 0) if dynamic else (None, None)
    return OnnxComponentSpec(
        name=name,
        inputs=(
            TensorSpec("input_ids", "int64", (length,), value_range=(0, "max_token_id"), pad_value=pad_ids),
            TensorSpec("attention_mask", "int64", (length,), value_range=(0, 1), pad_value=pad_mask),
        ),
        dynamic_axes=(DynamicAxis(SEQUENCE, max="context_length", opt=TEXT_OPT_TOKENS),) if dynamic else (),
        outputs=(TensorSpec("text_embeds", *_EMBED),),
        max_batch_size=TEXT_MAX_BATCH,
        queue=QueuePolicy(max_queue_size=TEXT_MAX_BATCH, timeout_us=10_000_000),
        tolerance=Tolerance(max_abs_diff=1e-4, min_cosine=0.9999),
        fp16_tolerance=_FP16,
        bf16_tolerance=_BF16,
        # The token embedding table too (Gather): clip-vit-base-patch32's text tower is 62 MiB at int8 with it, 134
        # without, at the same cosine against float32 (0.99919) and speed.
        int8_ops=("MatMul", "Gemm", "Gather"),
        # Two threads, as the in-process limit uses: with one, CLIP's text encoder's stub was the served path's
        # bottleneck (busy 98% of the time under clip-text load at concurrency 8, py-spy), and two served 1.10x
        # (0.77-1.71) of one's requests/s (two servers, 8 alternating rounds).
        resources=Resources(instance_count=1, intra_op_threads=2),
        # At concurrency 8 batches were 4.3 texts on average, half the clients' requests waiting while the other
        # half ran, and a text cost 13.8 ms against 9.8 in batches of 8. Waiting up to 6 ms for batches of 8 served
        # 88.9 requests/s against 78.3 (0.84x and 0.77x the in-process limit, clip-vit-base-patch32); 15 ms served
        # 85.3 and added 15 ms at concurrency 1, where 6 ms kept 0.92x Hugging Face's one-at-a-time rate.
        max_queue_delay_us=6000,
        preferred_batch_sizes=(8, 16, 32),
        parity_batch_sizes=(1, 3, TEXT_MAX_BATCH),
    )


@cache  # one set of specs per name: the default names' specs are the same objects wherever they are asked for
def dual_encoder_models(
    name: str, family: str, text_padding: TextPadding, scoring: Scoring, pixels: PixelLayout = "image"
) -> DualEncoderModels:
    """The models of the dual-encoder checkpoint ``name`` (of ``family``): ``<name>_preprocess``,
    ``<name>_vision``, ..., its three ensembles tagged with what they serve (export/families/tags.py)."""
    prefix = name
    # Response caching is on the ensembles, not on the encoders: Triton 2.51 caches a python model's error
    # response as an empty success, so a repeated bad request sent straight to a cached encoder would get an
    # answer without outputs instead of its error. The encoders validate values (NaN, token ids out of range);
    # the ensembles' caches keep errors out.
    vision = OnnxComponentSpec(
        name=f"{prefix}_vision",
        inputs=VISION_INPUTS[pixels],
        outputs=(TensorSpec("image_embeds", *_EMBED),),
        max_batch_size=VISION_MAX_BATCH,
        queue=QueuePolicy(max_queue_size=VISION_MAX_BATCH, timeout_us=10_000_000),
        tolerance=Tolerance(max_abs_diff=1e-4, min_cosine=0.9999),
        fp16_tolerance=_FP16,
        bf16_tolerance=_BF16,
        resources=Resources(instance_count=1, intra_op_threads=2, cpu_batch=VISION_CPU_BATCH),
        parity_batch_sizes=(1, 3, VISION_MAX_BATCH),
    )
    text = _text_encoder(f"{prefix}_text", text_padding)
    length = text.inputs[0].dims[0]
    preprocess = PythonModelSpec(
        name=f"{prefix}_preprocess",
        inputs=(_IMAGE_BYTES, WAIT_FOR),
        outputs=tuple(TensorSpec(t.name, t.dtype, (-1, *t.dims)) for t in vision.inputs),
        entry_point="serving.triton_models.image_preprocess:ImagePreprocess",
        # Two instances, though one is as fast (at concurrency 8 one served 0.85x and 1.00x of two, within the
        # noise) and a second holds 50 MiB more: SINGLE_INSTANCE_STALL (export/families/limits.py).
        resources=ENTRY_STEP,
        queue=STEP_QUEUE,
        parameters={**image_limits(VISION_MAX_BATCH), **PIXEL_LAYOUT_PARAMETERS[pixels]},
    )
    tokenize = PythonModelSpec(
        name=f"{prefix}_tokenize",
        inputs=(_TEXT_BYTES,),
        outputs=(TensorSpec("input_ids", "int64", (-1, length)), TensorSpec("attention_mask", "int64", (-1, length))),
        entry_point="serving.triton_models.text_tokenize:TextTokenize",
        resources=ENTRY_STEP,  # SINGLE_INSTANCE_STALL
        queue=STEP_QUEUE,
        parameters={"max_texts": str(TEXT_MAX_BATCH), "max_text_bytes": str(MAX_TEXT_BYTES), "padding": text_padding},
    )
    similarity = PythonModelSpec(
        name=f"{prefix}_similarity",
        inputs=(
            TensorSpec("image_embeds", "float32", (-1, "embed_dim")),
            TensorSpec("text_embeds", "float32", (-1, "embed_dim")),
        ),
        outputs=(TensorSpec("logits_per_image", "float32", (-1, -1)), TensorSpec("probs", "float32", (-1, -1))),
        entry_point="serving.triton_models.similarity:Similarity",
        queue=QueuePolicy(max_queue_size=16, timeout_us=10_000_000),  # its requests did their work: room for more
        parameters={"max_images": str(VISION_MAX_BATCH), "max_texts": str(TEXT_MAX_BATCH), "scoring": scoring},
    )
    pixel_map = {t.name: t.name for t in vision.inputs}
    preprocess_step = EnsembleStep(preprocess.name, {"image": "image"}, pixel_map)
    vision_step = EnsembleStep(vision.name, pixel_map, {"image_embeds": "image_embeds"})
    token_map = {"input_ids": "input_ids", "attention_mask": "attention_mask"}
    tokenize_step = EnsembleStep(tokenize.name, {"text": "text"}, token_map)
    text_step = EnsembleStep(text.name, token_map, {"text_embeds": "text_embeds"})
    image_embed = EnsembleSpec(
        name=f"{prefix}_image_embed",
        inputs=(_IMAGE_BYTES,),
        outputs=(TensorSpec("image_embeds", "float32", (-1, "embed_dim")),),
        response_cache=True,
        steps=(preprocess_step, vision_step),
        parameters=served_tags(family, name, "image_embed"),
    )
    # The tokenizer's attention mask is an output too: its row sums are the tokens each text was read as (start and
    # end tokens included, after truncation), the usage an embeddings API reports.
    text_embed = EnsembleSpec(
        name=f"{prefix}_text_embed",
        inputs=(_TEXT_BYTES,),
        outputs=(
            TensorSpec("text_embeds", "float32", (-1, "embed_dim")),
            TensorSpec("attention_mask", "int64", (-1, "context_length")),
        ),
        response_cache=True,
        steps=(tokenize_step, text_step),
        parameters=served_tags(family, name, "text_embed"),
    )
    rank = EnsembleSpec(
        name=f"{prefix}_rank",
        inputs=(_IMAGE_BYTES, _TEXT_BYTES),
        outputs=similarity.outputs,
        response_cache=True,
        steps=(
            tokenize_step,
            EnsembleStep(preprocess.name, {"image": "image", "wait_for": "attention_mask"}, preprocess_step.output_map),
            vision_step,
            text_step,
            EnsembleStep(
                similarity.name,
                {"image_embeds": "image_embeds", "text_embeds": "text_embeds"},
                {"logits_per_image": "logits_per_image", "probs": "probs"},
            ),
        ),
        parameters=served_tags(family, name, "rank", probe="rank"),
    )
    return DualEncoderModels(preprocess, vision, tokenize, text, similarity, image_embed, text_embed, rank)
