"""``llava_decoder``: the decoupled python-backend model that turns a conversation (plus the projector's
image embeddings) into streamed text, with vLLM's ``AsyncLLM`` as the engine.

``execute`` validates and schedules: every rule is checked here, before any model compute, and a bad request
gets one error response naming the field and the limit. Each admitted request then runs as a coroutine on the
engine's loop (``serving.generation.vllm_engine``), which streams its text through the request's response
sender. The image embeddings enter vLLM as they are (``enable_mm_embeds``): the exported vision tower and
projector computed them in the ensemble's earlier steps.
"""

from __future__ import annotations

import asyncio
import itertools
import locale
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from serving.admission import AdmissionBoard, door_mark
from serving.errors import InvalidInputError, busy_message
from serving.generation.checkpoint import DecoderCheckpoint, load_tokenizer, read_checkpoint
from serving.generation.grid_embeds import grid_images, warm_up_grid_images, with_videos
from serving.generation.params import (
    GenerationLimits,
    SamplingParams,
    StructuredOutput,
    parse_sampling_params,
    vllm_sampling_params,
)
from serving.generation.pixel_images import PixelImages, image_input
from serving.generation.prompt import (
    PromptRules,
    check_images,
    check_videos,
    count_images,
    count_videos,
    expand_videos,
    parse_messages,
    prompt_ids,
)
from serving.generation.vllm_engine import EngineLoop, EngineSettings, start_vllm
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, require_shape

STEP_FLUSH_INTERVAL_S = 0.1
SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class Alternative:
    token_id: int
    logprob: float
    token: str  # the token's own text


@dataclass(frozen=True)
class GenerationResult:
    text: str  # the part of the completion not yet streamed (all of it without streaming)
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    token_ids: list[int]
    logprobs: list[float]  # of each completion token under the model's (unprocessed) distribution
    # The text each completion token added ("" for EOS and for a token that ends mid-character, whose character
    # comes with a later token); they concatenate to the whole completion's text.
    tokens: list[str]
    alternatives: list[list[Alternative]]  # per token, the top_logprobs likeliest (empty lists when not asked)
    video_frames: list[int] = field(default_factory=list)  # frames the model saw of each video

    @property
    def confidence(self) -> float:
        """Mean probability of the completion's tokens."""
        return sum(math.exp(p) for p in self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


class TritonSink:
    """Delivers one request's results through its Triton response sender, from the engine's loop. (A thread of
    its own for the sends only added GIL hand-offs: the loop does little besides.)"""

    def __init__(self, pb: Any, sender: Any, log_error: Callable[[str], None], model: str = "llava_decoder") -> None:
        self.pb = pb
        self.sender = sender
        self.log_error = log_error
        self.model = model  # the decoder's name (a named checkpoint's NAME_decoder), which its errors start with

    def post(self, send: Callable[[], None]) -> None:
        try:
            send()
        except Exception:  # one client's broken stream must not stop the others' responses
            self.log_error(traceback.format_exc())

    def is_cancelled(self) -> bool:
        return bool(self.sender.is_cancelled())

    def send_text(self, text: str) -> None:
        self.post(lambda: self.sender.send(self.pb.InferenceResponse(output_tensors=[self._text(text)])))

    def send_final(self, result: GenerationResult) -> None:
        self.post(lambda: self._send_final(result))

    def _send_final(self, result: GenerationResult) -> None:
        outputs = [
            self._text(result.text),
            self.pb.Tensor("finish_reason", np.array([result.finish_reason.encode()], dtype=object)),
            self.pb.Tensor("prompt_tokens", np.array([result.prompt_tokens], dtype=np.int32)),
            self.pb.Tensor("completion_tokens", np.array([len(result.token_ids)], dtype=np.int32)),
            self.pb.Tensor("token_ids", np.array(result.token_ids, dtype=np.int32)),
            self.pb.Tensor("logprobs", np.array(result.logprobs, dtype=np.float32)),
            self.pb.Tensor("tokens", np.array([t.encode() for t in result.tokens], dtype=object)),
            self.pb.Tensor("confidence", np.array([result.confidence], dtype=np.float32)),
            *self._alternatives(result.alternatives),
            self.pb.Tensor("video_frames", np.array(result.video_frames, dtype=np.int32)),
        ]
        self.sender.send(
            self.pb.InferenceResponse(output_tensors=outputs), flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        )

    def _alternatives(self, alternatives: list[list[Alternative]]) -> list[Any]:
        width = min((len(step) for step in alternatives), default=0)  # vLLM lists at least top_logprobs per step
        steps = [step[:width] for step in alternatives]
        ids = np.array([[a.token_id for a in step] for step in steps], dtype=np.int32).reshape(len(steps), width)
        logprobs = np.array([[a.logprob for a in step] for step in steps], dtype=np.float32).reshape(ids.shape)
        tokens = np.array([[a.token.encode() for a in step] for step in steps], dtype=object).reshape(ids.shape)
        return [
            self.pb.Tensor("alternative_ids", ids),
            self.pb.Tensor("alternative_logprobs", logprobs),
            self.pb.Tensor("alternative_tokens", tokens),
        ]

    def send_cancel_count(self, count: int) -> None:
        """The answer to a cancel request: how many requests it stopped."""
        outputs = [self.pb.Tensor("cancelled", np.array([count], dtype=np.int32))]
        response = self.pb.InferenceResponse(output_tensors=outputs)
        self.post(lambda: self.sender.send(response, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL))

    def send_cancelled(self) -> None:
        self._send_error("the request was cancelled", self.pb.TritonError.CANCELLED)

    def send_error(self, message: str) -> None:
        self._send_error(f"{self.model}: {message}", self.pb.TritonError.INTERNAL)

    def send_invalid(self, error: InvalidInputError) -> None:
        self._send_error(error.wire_message(), self.pb.TritonError.INVALID_ARG)  # the field as data

    def send_unavailable(self) -> None:
        """While the engine is rebuilt: "not ready", which clients and the probe read as down, not busy."""
        message = f"{self.model}: the engine is not ready (a new one is starting after the last one died)"
        self._send_error(message, self.pb.TritonError.UNAVAILABLE)

    def send_busy(self, reason: str) -> None:
        self._send_error(busy_message(self.model, reason), self.pb.TritonError.UNAVAILABLE)

    def _send_error(self, message: str, code: int) -> None:
        response = self.pb.InferenceResponse(error=self.pb.TritonError(message, code))
        self.post(lambda: self.sender.send(response, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL))

    def _text(self, text: str) -> Any:
        return self.pb.Tensor("text_output", np.array([text.encode()], dtype=object))


class DecoderMetrics:
    """Custom metrics on Triton's metrics endpoint: running and waiting sequences and the KV cache's usage (from
    vLLM's scheduler), engine steps by the number of sequences they ran, preemptions, completion tokens and finished
    requests."""

    def __init__(self, pb: Any, model_name: str) -> None:
        family = pb.MetricFamily
        self.labels = {"model": model_name}
        # Triton requires a family to outlive its metrics, so the families are kept as well.
        self.families = {
            "active": family("vlm_decoder_active_sequences", "Sequences in the running batch", family.GAUGE),
            "waiting": family("vlm_decoder_waiting_requests", "Requests queued for a free slot", family.GAUGE),
            "kv_cache": family("vlm_decoder_kv_cache_usage", "Share of the KV cache in use (0 to 1)", family.GAUGE),
            "preemptions": family(
                "vlm_decoder_preemptions_total",
                "Running sequences preempted for lack of KV cache (their blocks freed; recomputed when resumed)",
                family.COUNTER,
            ),
            "tokens": family(
                "vlm_decoder_generated_tokens_total", "Completion tokens of finished requests", family.COUNTER
            ),
            "steps": family(
                "vlm_decoder_steps_total", "Engine steps, by the number of sequences the step ran", family.COUNTER
            ),
            "finished": family(
                "vlm_decoder_requests_finished_total", "Requests finished, by finish reason", family.COUNTER
            ),
        }
        self.active = self.families["active"].Metric(labels=self.labels)
        self.waiting = self.families["waiting"].Metric(labels=self.labels)
        self.tokens = self.families["tokens"].Metric(labels=self.labels)
        self.kv_cache = self.families["kv_cache"].Metric(labels=self.labels)
        self.preemptions = self.families["preemptions"].Metric(labels=self.labels)
        self.steps: dict[int, Any] = {}
        self.pending_steps: dict[int, int] = {}
        self.last_values: dict[str, float] = {}
        self.flushed_at = time.monotonic()
        self.finished = {
            reason: self.families["finished"].Metric(labels={**self.labels, "finish_reason": reason})
            for reason in ("stop", "length", "cancelled", "error")
        }

    def record_finish(self, reason: str, tokens: int) -> None:
        self.finished[reason].increment(1)
        self.tokens.increment(tokens)

    def record(self, active: int, waiting: int, kv_cache_usage: float) -> None:
        """One engine step. Every metric call is a round trip to the Triton process, so gauges are set only when
        they change and step counts are sent in bulk (every 100 ms, and whenever the decoder falls idle)."""
        gauges = (
            (self.active, "active", active),
            (self.waiting, "waiting", waiting),
            (self.kv_cache, "kv_cache", round(kv_cache_usage, 3)),
        )
        for metric, key, value in gauges:
            if self.last_values.get(key) != value:
                metric.set(value)
                self.last_values[key] = value
        if active:
            self.pending_steps[active] = self.pending_steps.get(active, 0) + 1
        now = time.monotonic()
        if self.pending_steps and (active == 0 or now - self.flushed_at >= STEP_FLUSH_INTERVAL_S):
            self.flush_steps()
            self.flushed_at = now

    def record_preemptions(self, count: int) -> None:
        if count:
            self.preemptions.increment(count)

    def flush_steps(self) -> None:
        for batch_size, count in self.pending_steps.items():
            if batch_size not in self.steps:
                labels = {**self.labels, "batch_size": str(batch_size)}
                self.steps[batch_size] = self.families["steps"].Metric(labels=labels)
            self.steps[batch_size].increment(count)
        self.pending_steps.clear()


def scheduler_stat_logger(metrics: DecoderMetrics) -> Any:
    """A vLLM stat-logger class that hands each step's scheduler counts to ``metrics``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SchedulerStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx=0):
            if scheduler_stats is not None:
                metrics.record(
                    scheduler_stats.num_running_reqs, scheduler_stats.num_waiting_reqs, scheduler_stats.kv_cache_usage
                )
            if iteration_stats is not None:
                metrics.record_preemptions(iteration_stats.num_preempted_reqs)

        def log_engine_initialized(self) -> None:
            pass

    return SchedulerStatLogger


@dataclass
class Job:
    """One admitted generation request."""

    prompt: dict[str, Any]  # vLLM's prompt: token ids, and the image embeddings as multimodal data
    params: SamplingParams
    max_tokens: int
    sink: TritonSink
    request_id: str  # the client's id, by which a later cancel request names it
    engine_id: str  # unique within the engine
    video_frames: list[int] = field(default_factory=list)
    cancelled: bool = False
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)  # the text each token added; they concatenate to the text
    alternatives: list[list[Alternative]] = field(default_factory=list)

    def add_logprobs(self, token_ids: list[int], steps: list[dict[int, Any]]) -> None:
        """vLLM's logprobs of each new token: the sampled token's, and the likeliest ``top_logprobs`` by rank."""
        wanted = self.params.top_logprobs
        for token, step in zip(token_ids, steps, strict=True):
            self.logprobs.append(step[token].logprob)
            if wanted:
                ranked = sorted((entry.rank, token_id, entry) for token_id, entry in step.items())
                top = [Alternative(i, e.logprob, e.decoded_token or "") for rank, i, e in ranked if rank <= wanted]
                self.alternatives.append(top[:wanted])
            else:
                self.alternatives.append([])

    def add_text(self, new_tokens: int, text: str) -> None:
        """vLLM's text delta for its new tokens goes to the last of them: a token that ends mid-character, or that
        a stop string may still claim, adds its text with a later token."""
        if new_tokens:
            self.token_texts += [""] * (new_tokens - 1) + [text]
        elif self.token_texts:
            self.token_texts[-1] += text


class LlavaDecoder(PythonModel):
    def setup(self) -> None:
        # The stub's embedded Python runs with LC_CTYPE "C" whatever the environment says; importing vLLM (torch
        # inductor's templates) then fails to decode UTF-8 files.
        locale.setlocale(locale.LC_CTYPE, "")
        # The engine's loop thread runs Python between vLLM's steps almost all the time; with the default 5 ms
        # switch interval, the stub's main thread (new requests, cancellations) and the response sends waited
        # seconds for the GIL: on tiny-llava a cancelled stream ran 1,364 more tokens, and 3 with 0.5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        checkpoint = self.artifacts / Path(self.parameters["checkpoint"])  # absolute paths stay as they are
        self.tokenizer = load_tokenizer(checkpoint)
        # "pixels": vLLM encodes the images (a family whose vision tower is not exported), and their token counts
        # depend on their sizes; "embeds": the exported encoders' image embeddings, a fixed count each (or each
        # image's own with image_tokens); "grids": embeddings with each image's patch grid (serving.generation.
        # grid_embeds), which vLLM places by the grid.
        mode = image_input(self.parameters)
        self.pixel_images = PixelImages(checkpoint) if mode == "pixels" else None
        self.image_merge = self.int_parameter("image_merge_size") if mode == "grids" else 0
        # "frames": a video's frames are images to the model; "grids": the preprocess step's last grids are videos,
        # handed to vLLM as video embeddings (needs image_input grids).
        self.native_video = self.parameters.get("video_input", "frames") == "grids"
        if self.native_video and mode != "grids":
            raise ValueError("video_input grids needs image_input grids")
        self.video_seconds = self.parameters.get("video_seconds", "false") == "true"  # time positions (M-RoPE)
        self.checkpoint: DecoderCheckpoint = read_checkpoint(checkpoint, fixed_image_tokens=mode == "embeds")
        import torch

        on_gpu = torch.cuda.is_available()
        self.settings = EngineSettings.from_parameters(self.parameters, self.checkpoint.context_length, on_gpu)
        self.limits = GenerationLimits(
            max_tokens_limit=self.settings.max_model_len,
            max_stop_strings=self.int_parameter("max_stop_strings"),
        )
        self.rules = PromptRules(
            image_token=self.tokenizer.convert_ids_to_tokens(self.checkpoint.image_token_id),
            max_images=self.settings.max_images,
            max_messages_bytes=self.int_parameter("max_messages_bytes"),
        )
        self.default_max_tokens = self.int_parameter("default_max_tokens")
        tokens = len(self.tokenizer)
        self.allowed_token_ids = list(range(tokens)) if self.checkpoint.vocab_size > tokens else None
        max_waiting = self.int_parameter("max_waiting_requests")
        self.max_requests = self.settings.max_num_seqs + max_waiting
        # The ensemble's first step refuses past this mark, before any image is decoded (serving/admission.py).
        self.board = AdmissionBoard(self.model_name, door_mark(self.settings.max_num_seqs, max_waiting))
        if self.board.error:
            self.pb.Logger.log_warn(f"{self.model_name}: {self.board.error}")
        self.stream_interval_s = int(self.parameters.get("stream_interval_ms", "0")) / 1000
        self.cancel_poll_interval_s = int(self.parameters.get("cancel_poll_interval_ms", "100")) / 1000
        self.jobs: dict[str, Job] = {}  # by engine id; touched on the engine's loop only
        self.admitted = 0  # requests scheduled and not finished; execute() and the loop both change it
        self.admitted_lock = threading.Lock()
        self.engine_ids = itertools.count()
        self.metrics = DecoderMetrics(self.pb, self.model_name)
        self.engine: EngineLoop = start_vllm(
            checkpoint, self.settings, scheduler_stat_logger(self.metrics), self.log_error
        )
        self.engine.submit(self.warm_up()).result(timeout=120)
        self.engine.submit(self.watch_cancellations())

    async def warm_up(self) -> None:
        """A few tokens of a text prompt, an image prompt and a JSON answer, with the requests' own sampling
        settings, and an abort, before the model is ready: the first request of each kind pays for lazy set-up
        inside vLLM (1.9 s on tiny-llava for the first greedy request with logprobs), which would otherwise land on
        a client."""
        import torch

        image = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "warm up"}]}]
        pictures: Any
        if self.pixel_images is not None:
            pictures = [self.pixel_images.warm_up_image()]
        elif self.image_merge:
            pictures = warm_up_grid_images(self.image_merge, self.checkpoint.text_hidden)
        else:
            pictures = torch.zeros(1, self.checkpoint.image_tokens_per_image, self.checkpoint.text_hidden)
        text_prompt = {"prompt_token_ids": prompt_ids(self.tokenizer, [{"role": "user", "content": "warm up"}])}
        image_prompt = {"prompt_token_ids": prompt_ids(self.tokenizer, image), "multi_modal_data": {"image": pictures}}
        greedy = parse_sampling_params({}, self.limits)
        as_json = replace(greedy, structured=StructuredOutput(schema=None))
        for index, (prompt, params) in enumerate(
            ((text_prompt, greedy), (image_prompt, greedy), (text_prompt, as_json))
        ):
            sampling = vllm_sampling_params(params, 2, self.allowed_token_ids)
            async for _ in self.engine.engine.generate(prompt, sampling, f"warm-up-{index}"):
                pass

    def log_error(self, message: str) -> None:
        self.pb.Logger.log_error(f"{self.model_name}: {message}")

    def read_inputs(self, request: Any) -> dict[str, Any]:
        """numpy arrays, except ``image_embeds``: a torch tensor wherever the projector left it (the config
        keeps GPU inputs on the GPU: ``FORCE_CPU_ONLY_INPUT_TENSORS: no``)."""
        import torch

        inputs: dict[str, Any] = {}
        for name in self.input_names:
            tensor = self.pb.get_input_tensor_by_name(request, name)
            if tensor is None:
                continue
            on_host = tensor.is_cpu()
            if name == "image_embeds":
                inputs[name] = torch.from_numpy(tensor.as_numpy()) if on_host else torch.from_dlpack(tensor.to_dlpack())
            else:  # small scalars and strings; on a GPU only if a client sent them from CUDA shared memory
                inputs[name] = tensor.as_numpy() if on_host else torch.from_dlpack(tensor.to_dlpack()).cpu().numpy()
        return inputs

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sink = TritonSink(self.pb, request.get_response_sender(), self.log_error, self.model_name)
            try:
                if not self.engine.ready.is_set():
                    sink.send_unavailable()
                    continue
                inputs = self.read_inputs(request)
                if "cancel" in inputs:
                    request_id = self.cancel_id(inputs)
                    self.engine.submit(self.cancel(request_id, sink))
                    continue
                job = self.job(inputs, sink, request.request_id())
                if not self.admit():
                    sink.send_busy(f"{self.max_requests} requests are running or waiting")
                    continue
                self.engine.submit(self.run(job))
            except InvalidInputError as error:
                sink.send_invalid(error)
            except Exception:
                self.log_error(traceback.format_exc())
                sink.send_error("internal error")
        return None

    def finalize(self) -> None:
        self.engine.stop()
        self.board.close()

    def admit(self) -> bool:
        with self.admitted_lock:
            if self.admitted >= self.max_requests:
                return False
            self.admitted += 1
            self.board.publish(self.admitted)
            return True

    def release(self) -> None:
        with self.admitted_lock:
            self.admitted -= 1
            self.board.publish(self.admitted)

    def cancel_id(self, inputs: dict[str, Any]) -> str:
        if set(inputs) != {"cancel"}:
            raise InvalidInputError("cancel", "a cancel request carries only the id of the request to stop")
        request_id = _single_bytes("cancel", inputs["cancel"]).decode("utf-8", errors="replace")
        if not request_id.strip():
            raise InvalidInputError("cancel", "the id of the request to stop must not be empty")
        return request_id

    def job(self, inputs: dict[str, Any], sink: TritonSink, request_id: str) -> Job:
        """Every check that can fail a request, in order, before any model compute."""
        if "messages" not in inputs:
            raise InvalidInputError("messages", "required (the conversation to answer)")
        params = parse_sampling_params(inputs, self.limits)
        messages = parse_messages(_single_bytes("messages", inputs["messages"]), self.rules)
        raw_embeds = inputs.get("image_embeds")
        pictures = self.pixel_images.images(inputs) if self.pixel_images else []
        grids = None
        if self.image_merge:
            hidden = self.checkpoint.text_hidden
            grids = grid_images(raw_embeds, inputs.get("image_grid_thw"), self.image_merge, hidden)
        if self.pixel_images:
            images = len(pictures)
        elif self.image_merge:
            images = grids.images if grids else 0
        else:
            images = 0 if raw_embeds is None else raw_embeds.shape[0]
        frames = self.sampled_frames(inputs, images)
        check_videos(count_videos(messages), len(frames))
        videos = len(frames) if self.native_video else 0  # each video one grid, not its frames as images
        if self.native_video:
            images -= videos
            check_images(count_images(messages), images, self.rules.max_images)
            order: list[int] = []
        else:
            check_images(count_images(messages), images - sum(frames), self.rules.max_images)
            messages, order = expand_videos(messages, frames, images - sum(frames))
            check_images(count_images(messages), images, self.rules.max_images)
        ids = prompt_ids(self.tokenizer, messages)
        for kind, token, count in (
            ("image", self.checkpoint.image_token_id, images),
            ("video", self.checkpoint.video_token_id, videos),
        ):
            placeholders = sum(1 for t in ids if t == token) if token is not None else 0
            if placeholders != count:
                # e.g. a chat template that renders placeholders differently from the processor's rule
                raise InvalidInputError(
                    "messages", f"the rendered prompt holds {placeholders} {kind} tokens for {count} {kind}s"
                )
        prompt: dict[str, Any] = {"prompt_token_ids": ids}
        image_tokens = 0
        if pictures:
            prompt["multi_modal_data"] = {"image": pictures}  # vLLM's processor tiles and encodes them
            image_tokens = self.pixel_images.tokens(pictures) if self.pixel_images else 0
        elif grids:
            if self.native_video:
                seconds = inputs.get("video_second_per_grid") if self.video_seconds else None
                if self.video_seconds and videos and seconds is None:
                    raise InvalidInputError("video_second_per_grid", "required with videos for this model")
                prompt["multi_modal_data"] = with_videos(grids, videos, seconds)
            else:
                prompt["multi_modal_data"] = {"image": grids.data}
            image_tokens = grids.tokens
        elif images:
            embeds = self.image_embeds(raw_embeds, inputs.get("image_tokens"))
            prompt["multi_modal_data"] = {"image": [embeds[i] for i in order]}
            image_tokens = sum(len(image) for image in embeds)
        # vLLM expands each placeholder into its image's (or video's) tokens
        prompt_tokens = len(ids) + image_tokens - images - videos
        return Job(
            prompt=prompt,
            params=params,
            max_tokens=self.max_tokens(prompt_tokens, params, image_tokens),
            sink=sink,
            request_id=request_id,
            engine_id=f"{next(self.engine_ids)}",
            video_frames=frames,
        )

    def sampled_frames(self, inputs: dict[str, Any], images: int) -> list[int]:
        """How many of the request's images are each video's frames (the last ones); none without videos."""
        if "sampled_frames" not in inputs:
            return []
        counts = [int(n) for n in np.asarray(inputs["sampled_frames"]).reshape(-1)]
        if self.native_video:  # one grid a video
            if any(n < 1 for n in counts) or len(counts) > images:
                raise InvalidInputError("sampled_frames", f"must be positive, at most {images} videos, got {counts}")
            return counts
        if any(n < 1 for n in counts) or sum(counts) > images:
            raise InvalidInputError("sampled_frames", f"must be positive and sum to at most {images}, got {counts}")
        return counts

    def image_embeds(self, embeds: Any, lengths: np.ndarray | None) -> list[Any]:
        """Each image's embeddings [tokens, hidden], checked, then copied: the copies outlive the request's input
        buffers, which vLLM reads later. Without ``image_tokens`` every image has the checkpoint's fixed count
        (LLaVA-1.5); with it, image i is the first ``image_tokens[i]`` rows of its padded embeddings (LLaVA-NeXT's
        count depends on the image's size)."""
        import torch

        shape, hidden = tuple(embeds.shape), self.checkpoint.text_hidden
        if lengths is None:
            require_shape("image_embeds", shape, [-1, self.checkpoint.image_tokens_per_image, hidden])
            counts = [shape[1]] * shape[0]
        else:
            require_shape("image_embeds", shape, [-1, -1, hidden])
            require_shape("image_tokens", tuple(lengths.shape), [shape[0]])
            counts = [int(n) for n in lengths]
            if any(not 1 <= n <= shape[1] for n in counts):
                raise InvalidInputError("image_tokens", f"each image's length must be 1 to {shape[1]}, got {counts}")
        if not bool(torch.isfinite(embeds).all()):
            raise InvalidInputError("image_embeds", "values must be finite (no NaN or infinity)")
        return [embeds[i, :n].clone() for i, n in enumerate(counts)]

    def max_tokens(self, prompt_tokens: int, params: SamplingParams, image_tokens: int) -> int:
        context = self.settings.max_model_len
        room = context - prompt_tokens
        prompt = f"the prompt is {prompt_tokens} tokens ({image_tokens} of them image tokens)"
        if room < 1:
            raise InvalidInputError("messages", f"{prompt}, which leaves no room in the context length of {context}")
        if params.max_tokens is None:
            return min(self.default_max_tokens, room)
        if params.max_tokens > room:
            raise InvalidInputError(
                "max_tokens",
                f"{prompt} and max_tokens is {params.max_tokens}; together they exceed the context length of {context}",
            )
        return params.max_tokens

    async def run(self, job: Job) -> None:
        """Generate for one request on the engine's loop, streaming text at most every ``stream_interval``."""
        from vllm.v1.engine.exceptions import EngineDeadError

        self.jobs[job.engine_id] = job
        pending, sent_at, finish_reason, prompt_tokens = "", 0.0, "", 0
        sampling = vllm_sampling_params(job.params, job.max_tokens, self.allowed_token_ids)
        try:
            async for output in self.engine.engine.generate(job.prompt, sampling, job.engine_id):
                completion = output.outputs[0]
                if output.prompt_token_ids is not None:
                    prompt_tokens = len(output.prompt_token_ids)
                job.token_ids += completion.token_ids
                job.add_text(len(completion.token_ids), completion.text)
                job.add_logprobs(completion.token_ids, completion.logprobs or [])
                pending += completion.text
                finish_reason = completion.finish_reason or finish_reason
                now = time.monotonic()
                if job.params.stream and pending and not output.finished and now - sent_at >= self.stream_interval_s:
                    job.sink.send_text(pending)
                    pending, sent_at = "", now
            if job.cancelled or finish_reason not in ("stop", "length"):
                job.sink.send_cancelled()
                self.metrics.record_finish("cancelled", len(job.token_ids))
                return
            job.sink.send_final(
                GenerationResult(
                    text=pending,  # without streaming, the whole text
                    finish_reason=finish_reason,
                    prompt_tokens=prompt_tokens,
                    token_ids=job.token_ids,
                    logprobs=job.logprobs,
                    tokens=job.token_texts,
                    alternatives=job.alternatives,
                    video_frames=job.video_frames,
                )
            )
            self.metrics.record_finish(finish_reason, len(job.token_ids))
        except Exception as error:
            self.metrics.record_finish("error", len(job.token_ids))
            if isinstance(error, EngineDeadError) or self.engine.engine is None or self.engine.engine.errored:
                job.sink.send_unavailable()
                self.engine.restart()
            else:
                self.log_error(traceback.format_exc())
                job.sink.send_error("internal error")
        finally:
            del self.jobs[job.engine_id]
            self.release()

    async def cancel(self, request_id: str, sink: TritonSink) -> None:
        stopped = [job for job in self.jobs.values() if job.request_id == request_id and not job.cancelled]
        for job in stopped:
            await self.abort(job)
        sink.send_cancel_count(len(stopped))

    async def abort(self, job: Job) -> None:
        job.cancelled = True
        await self.engine.engine.abort(job.engine_id)

    async def watch_cancellations(self) -> None:
        """Reads every running request's cancellation flag (a round trip to Triton) every poll interval and
        aborts the cancelled ones in vLLM, which frees their slot at its next step."""
        while True:
            await asyncio.sleep(self.cancel_poll_interval_s)
            for job in list(self.jobs.values()):
                if not job.cancelled and job.sink.is_cancelled():
                    try:
                        await self.abort(job)
                    except Exception:
                        self.log_error(traceback.format_exc())


def _single_bytes(field: str, array: np.ndarray) -> bytes:
    items = as_bytes_list(array)
    if len(items) != 1:
        raise InvalidInputError(field, f"expected exactly one element, got {len(items)}")
    return items[0]
