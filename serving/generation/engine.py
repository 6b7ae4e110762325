"""The decoder engine: in-flight batching of LLaVA generation over one causal language model.

One background thread runs steps. Each step first drops cancelled sequences, then prefills waiting
requests (prompt embeddings with the projected image embeddings spliced in) and merges them into the
running batch, then runs one decode step for every running sequence with the shared, left-padded KV
cache. Requests therefore join and leave at step boundaries and never wait for one another to finish.
Results go to each request's ``ResultSink`` (the Triton adapter's response sender, or a test's list).
"""

from __future__ import annotations

import math
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from serving.generation.detokenizer import IncrementalDetokenizer
from serving.generation.kv_batch import KVBatch, new_cache
from serving.generation.params import SamplingParams
from serving.generation.sampler import make_generator, select_tokens
from serving.generation.stop import find_stop, holdback

CANCELLED_ID_MEMORY_S = 60.0


@dataclass(frozen=True)
class GenerationResult:
    text: str  # the part of the completion not yet streamed (all of it without streaming)
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    token_ids: list[int]
    logprobs: list[float]  # of each completion token under the model's (unprocessed) distribution
    # The text each completion token added, as the incremental detokenizer produced it ("" for EOS and for a
    # token that ends mid-character, whose character comes with a later token); they concatenate to the text.
    tokens: list[str]

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def confidence(self) -> float:
        """Mean probability of the completion's tokens."""
        return sum(math.exp(p) for p in self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


class ResultSink(Protocol):
    def is_cancelled(self) -> bool: ...
    def send_text(self, text: str) -> None: ...
    def send_final(self, result: GenerationResult) -> None: ...
    def send_cancelled(self) -> None: ...
    def send_error(self, message: str) -> None: ...


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    image_embeds: torch.Tensor | None  # [image tokens in the prompt, hidden], in prompt order
    params: SamplingParams
    max_tokens: int
    sink: ResultSink
    request_id: str = ""  # the client's id, by which a later cancel request names it
    cancel_requested: bool = False  # set by the engine thread only
    last_polled: float = 0.0  # time.monotonic() of the last look at the client's cancellation


@dataclass(frozen=True)
class CancelRequest:
    """Stop every queued or running request with this id; ``reply`` gets how many there were."""

    request_id: str
    reply: Callable[[int], None]


@dataclass(frozen=True)
class EngineConfig:
    image_token_id: int
    eos_token_ids: tuple[int, ...]
    max_active_sequences: int
    max_prefill_tokens: int
    # Text reaches the client at most this often per sequence (the first piece at once), and Triton's
    # cancellation flag is polled at most every ``cancel_poll_interval_s``: each is a round trip through Triton,
    # which costs more than a decode step of a small model. A cancellation seen is acted on at the next step.
    stream_interval_s: float = 0.0
    cancel_poll_interval_s: float = 0.0
    # Requests that may wait for a free slot (None: no bound); one more is refused with ``EngineBusyError``,
    # so a burst is turned away at once instead of queueing without bound.
    max_waiting_requests: int | None = None
    # Threads for decode steps and for the prefill forward, set in the engine's own thread (None: leave that
    # thread's setting). A prompt's forward is large enough to use more cores than a decode step of a few tokens.
    decode_threads: int | None = None
    prefill_threads: int | None = None


class EngineBusyError(RuntimeError):
    """The waiting list is full; the message says so and is safe to show a client."""


@dataclass(frozen=True)
class StepStats:
    """Called back after every step: the batch size the decode ran with (0: none ran) and what remains."""

    batch_size: int
    prefilled: int
    active: int
    waiting: int


@dataclass
class _Sequence:
    request: GenerationRequest
    generator: torch.Generator
    detokenizer: IncrementalDetokenizer
    history: torch.Tensor  # prompt + generated ids; only the repetition penalty reads it
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    token_texts: list[str] = field(default_factory=list)  # what each token added to ``text``
    text: str = ""
    streamed: int = 0  # characters of ``text`` already sent
    last_sent: float = 0.0  # time.monotonic() of the last piece sent
    done: bool = False  # its last response is sent
    cut_at_stop: bool = False  # the text ends where a stop string began


class Engine:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: EngineConfig,
        on_step: Callable[[StepStats], None] | None = None,
        on_finish: Callable[[str, int], None] | None = None,
        log_error: Callable[[str], None] | None = None,
    ) -> None:
        layers = {type(layer) for layer in DynamicCache(config=model.config).layers}
        if layers != {DynamicLayer}:  # a sliding-window layer drops old columns that KVBatch keeps aligned
            raise ValueError("the decoder batches only full-attention caches (no sliding-window layers)")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = next(model.parameters()).device
        self.on_step = on_step or (lambda stats: None)
        # (finish reason, completion tokens), called before the request's last response is sent, so a
        # client that has its answer also sees it counted
        self.on_finish = on_finish or (lambda reason, tokens: None)
        self.log_error = log_error or (lambda message: None)
        self.embed = model.get_input_embeddings()
        self.incoming: queue.Queue[GenerationRequest | CancelRequest | None] = queue.Queue()
        self.incoming_requests = 0  # generation requests in ``incoming``; with ``waiting``, what the bound counts
        self.incoming_lock = threading.Lock()
        self.waiting: list[GenerationRequest] = []
        self.running: list[_Sequence] = []
        self.batch = KVBatch()
        self.thread = threading.Thread(target=self._loop, name="llava-decoder-engine", daemon=True)
        self.stopping = False
        self.cancelled_ids: dict[str, float] = {}  # id -> expiry: a cancel may overtake its request

    def start(self) -> Engine:
        self.thread.start()
        return self

    def submit(self, request: GenerationRequest | CancelRequest) -> None:
        """Queue a request for the engine thread; a generation request past the waiting bound raises
        ``EngineBusyError`` (cancels always pass)."""
        if isinstance(request, GenerationRequest):
            with self.incoming_lock:
                bound = self.config.max_waiting_requests
                if bound is not None and self.incoming_requests + len(self.waiting) >= bound:
                    raise EngineBusyError(
                        f"busy: {bound} requests already wait for a free sequence slot "
                        f"(max_waiting_requests); retry later"
                    )
                self.incoming_requests += 1
        self.incoming.put(request)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Bounded: a step stuck on a server that is already gone must not keep the process alive."""
        self.stopping = True
        self.incoming.put(None)
        self.thread.join(timeout_s)

    # -- the loop ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self.stopping

    def _loop(self) -> None:
        if self.config.decode_threads:
            torch.set_num_threads(self.config.decode_threads)  # a thread count is the calling thread's own
        while not self.stopping:
            try:
                self._collect(block=not self.running and not self.waiting)
                self._step()
            except Exception:
                self.log_error(traceback.format_exc())
                self._fail_all("internal error")
        self._collect(block=False)  # what arrived during the last step is told too
        self._fail_all("the server is shutting down")

    def _collect(self, block: bool) -> None:
        try:
            item = self.incoming.get(block=block)
            while True:
                if isinstance(item, GenerationRequest):
                    item.cancel_requested = item.request_id in self.cancelled_ids
                    self.waiting.append(item)
                    with self.incoming_lock:  # after the append: the bound may over-count, never under-count
                        self.incoming_requests -= 1
                elif isinstance(item, CancelRequest):
                    self._mark_cancelled(item)
                item = self.incoming.get_nowait()
        except queue.Empty:
            return

    def _mark_cancelled(self, cancel: CancelRequest) -> None:
        """Cancelled requests leave at the start of the next step, as client-cancelled ones do. The id is
        remembered for a while: through an ensemble, a cancel can arrive before the request it names."""
        now = time.monotonic()
        self.cancelled_ids = {i: expiry for i, expiry in self.cancelled_ids.items() if expiry > now}
        self.cancelled_ids[cancel.request_id] = now + CANCELLED_ID_MEMORY_S
        matches = [
            request
            for request in (*self.waiting, *(s.request for s in self.running))
            if request.request_id == cancel.request_id and not request.cancel_requested
        ]
        for request in matches:
            request.cancel_requested = True
        cancel.reply(len(matches))

    @torch.inference_mode()
    def _step(self) -> None:
        self._drop_cancelled()
        admitted = self._admit()
        if admitted:
            try:
                self._prefill(admitted)
            except Exception:  # only the new requests fail; the running batch is untouched
                self.log_error(traceback.format_exc())
                for request in admitted:
                    self.on_finish("error", 0)
                    request.sink.send_error("internal error")
        batch_size = len(self.running)
        if self.running:
            self._advance(self.running, self._decode())
        self.on_step(StepStats(batch_size, len(admitted), len(self.running), len(self.waiting)))

    def _drop_cancelled(self) -> None:
        still_waiting = []
        now = time.monotonic()
        for request in self.waiting:
            if request.cancel_requested or self._client_cancelled(request, now):
                self.on_finish("cancelled", 0)
                request.sink.send_cancelled()
            else:
                still_waiting.append(request)
        self.waiting = still_waiting
        keep = []
        for row, sequence in enumerate(self.running):
            if sequence.request.cancel_requested or self._client_cancelled(sequence.request, now):
                self.on_finish("cancelled", len(sequence.token_ids))
                sequence.request.sink.send_cancelled()
            else:
                keep.append(row)
        if len(keep) < len(self.running):
            self._keep_rows(keep)

    def _client_cancelled(self, request: GenerationRequest, now: float) -> bool:
        if now - request.last_polled < self.config.cancel_poll_interval_s:
            return False
        request.last_polled = now
        return request.sink.is_cancelled()

    def _admit(self) -> list[GenerationRequest]:
        """Waiting requests, oldest first, that fit the free slots and this step's prefill budget."""
        admitted: list[GenerationRequest] = []
        longest = 0
        while self.waiting and len(self.running) + len(admitted) < self.config.max_active_sequences:
            longest = max(longest, len(self.waiting[0].prompt_ids))
            if admitted and longest * (len(admitted) + 1) > self.config.max_prefill_tokens:
                break
            admitted.append(self.waiting.pop(0))
        return admitted

    # -- model calls ----------------------------------------------------------------------------

    def _prompt_embeddings(self, request: GenerationRequest) -> torch.Tensor:
        ids = torch.tensor(request.prompt_ids, device=self.device)
        is_image = ids == self.config.image_token_id
        embeddings = self.embed(ids.masked_fill(is_image, 0))
        if request.image_embeds is not None:
            embeddings[is_image] = request.image_embeds.to(self.device, embeddings.dtype)
        return embeddings

    def _prefill(self, requests: list[GenerationRequest]) -> None:
        """One forward over the new prompts, left-padded together; their first tokens; merge into the batch."""
        decode_threads = torch.get_num_threads()
        if self.config.prefill_threads:
            torch.set_num_threads(self.config.prefill_threads)
        try:
            self._prefill_forward(requests)
        finally:
            torch.set_num_threads(decode_threads)

    def _prefill_forward(self, requests: list[GenerationRequest]) -> None:
        embeddings = [self._prompt_embeddings(request) for request in requests]
        width = max(e.shape[0] for e in embeddings)
        hidden = embeddings[0].shape[1]
        inputs = embeddings[0].new_zeros((len(requests), width, hidden))
        mask = torch.zeros((len(requests), width), dtype=torch.long, device=self.device)
        for row, e in enumerate(embeddings):
            inputs[row, width - e.shape[0] :] = e
            mask[row, width - e.shape[0] :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = new_cache(self.model.config)
        output = self.model(
            inputs_embeds=inputs,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        sequences = [self._new_sequence(request) for request in requests]
        chosen = self._select(sequences, output.logits[:, -1, :])  # may fail: nothing is merged yet
        self.batch.merge(output.cache, mask)
        self.running.extend(sequences)
        self._record(sequences, *chosen)

    def _decode(self) -> torch.Tensor:
        last = torch.tensor([[s.token_ids[-1]] for s in self.running], device=self.device)
        positions = self.batch.next_positions()
        mask = self.batch.extend_mask()
        output = self.model(
            input_ids=last,
            attention_mask=mask,
            position_ids=positions,
            cache=self.batch.cache,
            use_cache=True,
        )
        return output.logits[:, -1, :]

    # -- per-sequence bookkeeping -----------------------------------------------------------------

    def _new_sequence(self, request: GenerationRequest) -> _Sequence:
        return _Sequence(
            request=request,
            generator=make_generator(request.params.seed, self.device),
            detokenizer=IncrementalDetokenizer(self.tokenizer),
            history=torch.tensor(request.prompt_ids, device=self.device),
        )

    def _advance(self, sequences: list[_Sequence], logits: torch.Tensor) -> None:
        self._record(sequences, *self._select(sequences, logits))

    def _select(self, sequences: list[_Sequence], logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return select_tokens(
            logits.float(),
            [s.request.params for s in sequences],
            [s.history for s in sequences],
            [s.generator for s in sequences],
        )

    def _record(self, sequences: list[_Sequence], tokens: torch.Tensor, logprobs: torch.Tensor) -> None:
        """Append each sequence's chosen token, stream what can be streamed, and retire finished ones."""
        finished: set[int] = set()
        for sequence, token, logprob in zip(sequences, tokens.tolist(), logprobs.tolist(), strict=True):
            reason = self._append(sequence, token, logprob)
            if reason is None:
                self._stream(sequence)
            else:
                self._finish(sequence, reason)
                finished.add(id(sequence))
        if finished:
            self._keep_rows([row for row, s in enumerate(self.running) if id(s) not in finished])

    def _append(self, sequence: _Sequence, token: int, logprob: float) -> str | None:
        """Record one token; the finish reason if the sequence is done."""
        sequence.token_ids.append(token)
        sequence.logprobs.append(logprob)
        if sequence.request.params.repetition_penalty != 1.0:  # a per-token copy nobody else needs
            sequence.history = torch.cat([sequence.history, sequence.history.new_tensor([token])])
        if token in self.config.eos_token_ids:
            sequence.token_texts.append("")
            return "stop"
        piece = sequence.detokenizer.step(token)
        sequence.token_texts.append(piece)
        if piece:
            stops = sequence.request.params.stop
            start = len(sequence.text)
            sequence.text += piece
            cut = find_stop(sequence.text, stops, start) if stops else None
            if cut is not None:
                sequence.text = sequence.text[:cut]
                sequence.token_texts = _cut_texts(sequence.token_texts, cut)
                sequence.cut_at_stop = True
                return "stop"
        if len(sequence.token_ids) >= sequence.request.max_tokens:
            return "length"
        return None

    def _stream(self, sequence: _Sequence) -> None:
        if not sequence.request.params.stream:
            return
        now = time.monotonic()
        if sequence.streamed and now - sequence.last_sent < self.config.stream_interval_s:
            return
        ready = len(sequence.text) - holdback(sequence.text, sequence.request.params.stop)
        if ready > sequence.streamed:
            sequence.request.sink.send_text(sequence.text[sequence.streamed : ready])
            sequence.streamed, sequence.last_sent = ready, now

    def _finish(self, sequence: _Sequence, reason: str) -> None:
        if not sequence.cut_at_stop:
            rest = sequence.detokenizer.flush()  # bytes of a character the completion left unfinished
            sequence.text += rest
            sequence.token_texts[-1] += rest
        sequence.done = True
        self.on_finish(reason, len(sequence.token_ids))
        sequence.request.sink.send_final(
            GenerationResult(
                text=sequence.text[sequence.streamed :],
                finish_reason=reason,
                prompt_tokens=len(sequence.request.prompt_ids),
                token_ids=sequence.token_ids,
                logprobs=sequence.logprobs,
                tokens=sequence.token_texts,
            )
        )

    def _keep_rows(self, rows: list[int]) -> None:
        self.running = [self.running[row] for row in rows]
        self.batch.keep(rows)

    def _fail_all(self, message: str) -> None:
        unfinished = [s.request for s in self.running if not s.done]
        for request in [*self.waiting, *unfinished]:
            try:
                request.sink.send_error(message)
            except Exception:  # a sink whose client is gone must not stop the others being told
                self.log_error(traceback.format_exc())
            self.on_finish("error", 0)
        self.waiting, self.running = [], []
        self.batch = KVBatch()


def _cut_texts(texts: list[str], length: int) -> list[str]:
    """Per-token texts trimmed from the end to ``length`` characters in all (a stop string may begin in an
    earlier token's text); the tokens stay, with less or no text."""
    kept, total = [], 0
    for text in texts:
        piece = text[: max(0, length - total)]
        kept.append(piece)
        total += len(piece)
    return kept
