"""``llava_decoder``: the decoupled python-backend model that turns a conversation (plus the projector's
image embeddings) into streamed text.

``execute`` only validates and queues: every rule is checked here, before any model compute, and a bad
request gets one error response naming the field and the limit. The engine thread then generates for all
queued requests together (in-flight batching) and answers through each request's response sender.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.errors import InvalidInputError
from serving.generation.checkpoint import (
    load_language_model,
    load_tokenizer,
    read_checkpoint,
    resolve_dtype,
)
from serving.generation.engine import (
    CancelRequest,
    Engine,
    EngineBusyError,
    EngineConfig,
    GenerationRequest,
    GenerationResult,
    StepStats,
)
from serving.generation.params import GenerationLimits, SamplingParams, parse_sampling_params
from serving.generation.prompt import PromptRules, check_images, count_images, parse_messages, prompt_ids
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, require_shape

STEP_FLUSH_INTERVAL_S = 0.1


class Outbox:
    """Sends responses from its own thread: each send is a round trip to the Triton process, and the engine
    computes the next step meanwhile. One FIFO thread keeps every request's responses in order."""

    def __init__(self, log_error: Callable[[str], None]) -> None:
        self.log_error = log_error
        self.queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="llava-decoder-outbox", daemon=True)
        self.thread.start()

    def post(self, send: Callable[[], None]) -> None:
        self.queue.put(send)

    def close(self, timeout_s: float = 10.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout_s)  # bounded: sends to a server that is gone may never return

    def _run(self) -> None:
        while (send := self.queue.get()) is not None:
            try:
                send()
            except Exception:  # one client's broken stream must not stop the others' responses
                self.log_error(traceback.format_exc())


class TritonSink:
    """Delivers one request's results through its Triton response sender (via the outbox)."""

    def __init__(self, pb: Any, sender: Any, outbox: Outbox) -> None:
        self.pb = pb
        self.sender = sender
        self.outbox = outbox

    def is_cancelled(self) -> bool:
        return bool(self.sender.is_cancelled())

    def send_text(self, text: str) -> None:
        self.outbox.post(lambda: self.sender.send(self.pb.InferenceResponse(output_tensors=[self._text(text)])))

    def send_final(self, result: GenerationResult) -> None:
        self.outbox.post(lambda: self._send_final(result))

    def _send_final(self, result: GenerationResult) -> None:
        outputs = [
            self._text(result.text),
            self.pb.Tensor("finish_reason", np.array([result.finish_reason.encode()], dtype=object)),
            self.pb.Tensor("prompt_tokens", np.array([result.prompt_tokens], dtype=np.int32)),
            self.pb.Tensor("completion_tokens", np.array([result.completion_tokens], dtype=np.int32)),
            self.pb.Tensor("token_ids", np.array(result.token_ids, dtype=np.int32)),
            self.pb.Tensor("logprobs", np.array(result.logprobs, dtype=np.float32)),
            self.pb.Tensor("tokens", np.array([t.encode() for t in result.tokens], dtype=object)),
            self.pb.Tensor("confidence", np.array([result.confidence], dtype=np.float32)),
        ]
        self.sender.send(
            self.pb.InferenceResponse(output_tensors=outputs), flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        )

    def send_cancel_count(self, count: int) -> None:
        """The answer to a cancel request: how many requests it stopped."""
        outputs = [self.pb.Tensor("cancelled", np.array([count], dtype=np.int32))]
        response = self.pb.InferenceResponse(output_tensors=outputs)
        self.outbox.post(lambda: self.sender.send(response, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL))

    def send_cancelled(self) -> None:
        self._send_error("the request was cancelled", self.pb.TritonError.CANCELLED)

    def send_error(self, message: str) -> None:
        self._send_error(f"llava_decoder: {message}", self.pb.TritonError.INTERNAL)

    def send_invalid(self, error: InvalidInputError) -> None:
        self._send_error(str(error), self.pb.TritonError.INVALID_ARG)

    def send_busy(self, error: EngineBusyError) -> None:
        self._send_error(f"llava_decoder: {error}", self.pb.TritonError.UNAVAILABLE)

    def _send_error(self, message: str, code: int) -> None:
        response = self.pb.InferenceResponse(error=self.pb.TritonError(message, code))
        self.outbox.post(lambda: self.sender.send(response, flags=self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL))

    def _text(self, text: str) -> Any:
        return self.pb.Tensor("text_output", np.array([text.encode()], dtype=object))


class DecoderMetrics:
    """Custom metrics on Triton's metrics endpoint: the active-sequence count and steps by batch size."""

    def __init__(self, pb: Any, model_name: str) -> None:
        family = pb.MetricFamily
        self.labels = {"model": model_name}
        # Triton requires a family to outlive its metrics, so the families are kept as well.
        self.families = {
            "active": family("vlm_decoder_active_sequences", "Sequences in the running batch", family.GAUGE),
            "waiting": family("vlm_decoder_waiting_requests", "Requests queued for a free slot", family.GAUGE),
            "tokens": family(
                "vlm_decoder_generated_tokens_total", "Completion tokens of finished requests", family.COUNTER
            ),
            "steps": family(
                "vlm_decoder_steps_total", "Decode steps, by the number of sequences the step ran", family.COUNTER
            ),
            "finished": family(
                "vlm_decoder_requests_finished_total", "Requests finished, by finish reason", family.COUNTER
            ),
        }
        self.active = self.families["active"].Metric(labels=self.labels)
        self.waiting = self.families["waiting"].Metric(labels=self.labels)
        self.tokens = self.families["tokens"].Metric(labels=self.labels)
        self.steps: dict[int, Any] = {}
        self.pending_steps: dict[int, int] = {}
        self.last_values: dict[str, int] = {}
        self.flushed_at = time.monotonic()
        self.finished = {
            reason: self.families["finished"].Metric(labels={**self.labels, "finish_reason": reason})
            for reason in ("stop", "length", "cancelled", "error")
        }

    def record_finish(self, reason: str, tokens: int) -> None:
        self.finished[reason].increment(1)
        self.tokens.increment(tokens)

    def record(self, stats: StepStats) -> None:
        """Every metric call is a round trip to the Triton process, so gauges are set only when they change
        and step counts are sent in bulk (every 100 ms, and whenever the decoder falls idle)."""
        for metric, key, value in ((self.active, "active", stats.active), (self.waiting, "waiting", stats.waiting)):
            if self.last_values.get(key) != value:
                metric.set(value)
                self.last_values[key] = value
        if stats.batch_size:
            self.pending_steps[stats.batch_size] = self.pending_steps.get(stats.batch_size, 0) + 1
        now = time.monotonic()
        if self.pending_steps and (stats.active == 0 or now - self.flushed_at >= STEP_FLUSH_INTERVAL_S):
            self.flush_steps()
            self.flushed_at = now

    def flush_steps(self) -> None:
        for batch_size, count in self.pending_steps.items():
            if batch_size not in self.steps:
                labels = {**self.labels, "batch_size": str(batch_size)}
                self.steps[batch_size] = self.families["steps"].Metric(labels=labels)
            self.steps[batch_size].increment(count)
        self.pending_steps.clear()


class LlavaDecoder(PythonModel):
    def setup(self) -> None:
        checkpoint = self.artifacts / Path(self.parameters["checkpoint"])  # absolute paths stay as they are
        threads = self.int_parameter("torch_threads", default=1)
        # The model runs in the engine's thread, which sets its own counts. This thread takes one, so that it
        # never starts an OpenMP team: with a second team in the process, libgomp's threads outnumber the cores
        # and it throttles their spin-waits, and each decode step of bench-llava at batch 1 with two threads took
        # 20.3 ms instead of 12.7 ms.
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(self.parameters.get("dtype", "auto"), self.device)
        self.tokenizer = load_tokenizer(checkpoint)
        self.checkpoint = read_checkpoint(checkpoint, self.tokenizer)
        model = load_language_model(checkpoint, self.dtype, self.device)
        self.limits = GenerationLimits(
            max_tokens_limit=self.checkpoint.context_length,
            max_stop_strings=self.int_parameter("max_stop_strings"),
        )
        self.rules = PromptRules(
            image_token=self.tokenizer.convert_ids_to_tokens(self.checkpoint.image_token_id),
            image_tokens_per_image=self.checkpoint.image_tokens_per_image,
            max_images=self.int_parameter("max_images"),
            max_messages_bytes=self.int_parameter("max_messages_bytes"),
        )
        self.default_max_tokens = self.int_parameter("default_max_tokens")
        self.metrics = DecoderMetrics(self.pb, self.model_name)
        self.outbox = Outbox(self.log_error)
        self.engine = Engine(
            model,
            self.tokenizer,
            EngineConfig(
                image_token_id=self.checkpoint.image_token_id,
                eos_token_ids=self.checkpoint.eos_token_ids,
                max_active_sequences=self.int_parameter("max_active_sequences"),
                max_waiting_requests=self.int_parameter("max_waiting_requests"),
                max_prefill_tokens=self.int_parameter("max_prefill_tokens"),
                stream_interval_s=int(self.parameters.get("stream_interval_ms", "0")) / 1000,
                cancel_poll_interval_s=int(self.parameters.get("cancel_poll_interval_ms", "0")) / 1000,
                decode_threads=threads,
                prefill_threads=self.int_parameter("prefill_threads", default=threads),
            ),
            on_step=self.metrics.record,
            on_finish=self.metrics.record_finish,
            log_error=self.log_error,
        ).start()

    def log_error(self, message: str) -> None:
        self.pb.Logger.log_error(f"{self.model_name}: {message}")

    def read_inputs(self, request: Any) -> dict[str, Any]:
        """numpy arrays, except ``image_embeds``: a torch tensor wherever the projector left it (the config
        keeps GPU inputs on the GPU: ``FORCE_CPU_ONLY_INPUT_TENSORS: no``)."""
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
            sink = TritonSink(self.pb, request.get_response_sender(), self.outbox)
            try:
                if not self.engine.alive:
                    sink.send_error("the decoder is not running")
                    continue
                inputs = self.read_inputs(request)
                if "cancel" in inputs:
                    self.engine.submit(self.cancel_request(inputs, sink))
                else:
                    self.engine.submit(self.generation_request(inputs, sink, request.request_id()))
            except InvalidInputError as error:
                sink.send_invalid(error)
            except EngineBusyError as error:
                sink.send_busy(error)
            except Exception:
                self.pb.Logger.log_error(f"{self.model_name}: {traceback.format_exc()}")
                sink.send_error("internal error")
        return None

    def finalize(self) -> None:
        self.engine.stop()
        self.outbox.close()

    def cancel_request(self, inputs: dict[str, Any], sink: TritonSink) -> CancelRequest:
        if set(inputs) != {"cancel"}:
            raise InvalidInputError("cancel: a cancel request carries only the id of the request to stop")
        request_id = _single_bytes("cancel", inputs["cancel"]).decode("utf-8", errors="replace")
        if not request_id.strip():
            raise InvalidInputError("cancel: the id of the request to stop must not be empty")
        return CancelRequest(request_id, sink.send_cancel_count)

    def generation_request(self, inputs: dict[str, Any], sink: TritonSink, request_id: str) -> GenerationRequest:
        """Every check that can fail a request, in order, before any model compute."""
        if "messages" not in inputs:
            raise InvalidInputError("messages: required (the conversation to answer)")
        params = parse_sampling_params(inputs, self.limits)
        messages = parse_messages(_single_bytes("messages", inputs["messages"]), self.rules)
        raw_embeds = inputs.get("image_embeds")
        images = 0 if raw_embeds is None else raw_embeds.shape[0]
        check_images(count_images(messages), images, self.rules.max_images)
        embeds = self.image_embeds(raw_embeds)
        ids = prompt_ids(self.tokenizer, messages, self.rules)
        image_tokens = sum(1 for token in ids if token == self.checkpoint.image_token_id)
        if image_tokens != images * self.checkpoint.image_tokens_per_image:
            # e.g. a chat template that renders placeholders differently from the processor's rule
            raise InvalidInputError(
                f"messages: the rendered prompt holds {image_tokens} image tokens, "
                f"{images} images need {images * self.checkpoint.image_tokens_per_image}"
            )
        return GenerationRequest(
            prompt_ids=ids,
            image_embeds=None if embeds is None else embeds.reshape(-1, embeds.shape[-1]),
            params=params,
            max_tokens=self.max_tokens(len(ids), params, 0 if embeds is None else embeds.shape[0]),
            sink=sink,
            request_id=request_id,
        )

    def image_embeds(self, embeds: torch.Tensor | None) -> torch.Tensor | None:
        """Checked, then copied onto the model's device in its dtype: a GPU input stays on the GPU, and the
        copy outlives the request's input buffers, which the engine thread reads after ``execute`` returns."""
        if embeds is None or embeds.shape[0] == 0:
            return None
        tokens, hidden = self.checkpoint.image_tokens_per_image, self.checkpoint.text_hidden
        require_shape("image_embeds", tuple(embeds.shape), [-1, tokens, hidden])
        if not bool(torch.isfinite(embeds).all()):
            raise InvalidInputError("image_embeds: values must be finite (no NaN or infinity)")
        return embeds.to(device=self.device, dtype=self.dtype, copy=True)

    def max_tokens(self, prompt_tokens: int, params: SamplingParams, images: int) -> int:
        context = self.checkpoint.context_length
        room = context - prompt_tokens
        image_tokens = images * self.checkpoint.image_tokens_per_image
        prompt = f"the prompt is {prompt_tokens} tokens ({image_tokens} of them image tokens)"
        if room < 1:
            raise InvalidInputError(f"messages: {prompt}, which leaves no room in the context length of {context}")
        if params.max_tokens is None:
            return min(self.default_max_tokens, room)
        if params.max_tokens > room:
            raise InvalidInputError(
                f"max_tokens: {prompt} and max_tokens is {params.max_tokens}; "
                f"together they exceed the context length of {context}"
            )
        return params.max_tokens


def _single_bytes(field: str, array: np.ndarray) -> bytes:
    items = as_bytes_list(array)
    if len(items) != 1:
        raise InvalidInputError(f"{field}: expected exactly one element, got {len(items)}")
    return items[0]
