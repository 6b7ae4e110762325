"""The decoder engine in process, on tiny-llava: token-exact greedy parity with Hugging Face ``generate``
while many requests share the running batch, streaming, seeds, stop strings, length and cancellation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from serving.generation.checkpoint import load_language_model, load_tokenizer, read_checkpoint
from serving.generation.engine import (
    CancelRequest,
    Engine,
    EngineBusyError,
    EngineConfig,
    GenerationRequest,
    GenerationResult,
    StepStats,
)
from serving.generation.params import SamplingParams
from serving.generation.prompt import PromptRules, parse_messages, prompt_ids
from tests.images import scene
from tests.reference import LlavaReference

WAIT_S = 60


class Collector:
    """A result sink that keeps everything the engine sends."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.result: GenerationResult | None = None
        self.outcome = ""
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.first_text = threading.Event()

    def is_cancelled(self) -> bool:
        return self.cancel.is_set()

    def send_text(self, text: str) -> None:
        self.pieces.append(text)
        self.first_text.set()

    def send_final(self, result: GenerationResult) -> None:
        self.result, self.outcome = result, "final"
        self.done.set()

    def send_cancelled(self) -> None:
        self.outcome = "cancelled"
        self.done.set()

    def send_error(self, message: str) -> None:
        self.outcome = f"error: {message}"
        self.done.set()

    def wait(self) -> GenerationResult:
        assert self.done.wait(WAIT_S), "the engine did not answer"
        assert self.outcome == "final", self.outcome
        assert self.result is not None
        return self.result

    @property
    def text(self) -> str:
        assert self.result is not None
        return "".join(self.pieces) + self.result.text


class Harness:
    def __init__(self, checkpoint: Path, reference: LlavaReference) -> None:
        self.tokenizer = load_tokenizer(checkpoint)
        self.checkpoint = read_checkpoint(checkpoint, self.tokenizer)
        self.reference = reference
        self.rules = PromptRules("<image>", self.checkpoint.image_tokens_per_image, 4, 65536)
        self.steps: list[StepStats] = []
        self.finished: list[str] = []
        model = load_language_model(checkpoint, torch.float32, torch.device("cpu"))
        config = EngineConfig(self.checkpoint.image_token_id, self.checkpoint.eos_token_ids, 16, 8192)
        self.engine = Engine(
            model,
            self.tokenizer,
            config,
            on_step=self.steps.append,
            on_finish=lambda reason, tokens: self.finished.append(reason),
            log_error=print,
        ).start()

    def submit(
        self, messages: list[dict], images: list, params: SamplingParams, max_tokens: int, request_id: str = ""
    ) -> Collector:
        parsed = parse_messages(json.dumps(messages).encode(), self.rules)
        embeds = self.reference.image_embeds(images).flatten(0, 1) if images else None
        sink = Collector()
        ids = prompt_ids(self.tokenizer, parsed, self.rules)
        self.engine.submit(GenerationRequest(ids, embeds, params, max_tokens, sink, request_id))
        return sink


def user(text: str, images: int = 0) -> list[dict]:
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def reference(tiny_llava: Path) -> LlavaReference:
    return LlavaReference(tiny_llava)


@pytest.fixture(scope="module")
def harness(tiny_llava: Path, reference: LlavaReference) -> Iterator[Harness]:
    running = Harness(tiny_llava, reference)
    yield running
    running.engine.stop()


def test_greedy_tokens_equal_hf_generate_for_every_request_while_they_share_the_batch(
    harness: Harness, reference: LlavaReference
) -> None:
    cases = [
        (user("describe the image.", 1), [scene(seed=1)], 24),
        (user("what colour is the circle?", 2), [scene(seed=2), scene(80, 64, seed=3)], 12),
        (user("how many shapes are there?"), [], 30),
        (user("a red square"), [], 5),
        (user("what is left of the star?", 1), [scene(seed=4)], 40),
        ([*user("what?", 1), {"role": "assistant", "content": "a circle."}, *user("and the colour?")], [scene()], 16),
        (user("two images, compare them", 2), [scene(seed=5), scene(seed=6)], 20),
        (user("hi"), [], 33),
        (user("the shapes", 1), [scene(seed=7)], 8),
        (user("count", 1), [scene(seed=8)], 27),
    ]
    steps_before = len(harness.steps)
    sinks = [harness.submit(m, images, SamplingParams(), n) for m, images, n in cases]
    for sink, (messages, images, max_tokens) in zip(sinks, cases, strict=True):
        result = sink.wait()
        assert result.token_ids == reference.greedy(messages, images, max_tokens)
        expected = reference.text(result.token_ids)
        if "\ufffd" not in expected + sink.text:  # bytes that are not UTF-8 may be replaced piece by piece
            assert sink.text == expected
    assert max(stats.batch_size for stats in harness.steps[steps_before:]) > 1


def test_streamed_pieces_concatenate_to_the_unstreamed_text(harness: Harness) -> None:
    messages, images = user("describe the image.", 1), [scene(seed=9)]
    streamed = harness.submit(messages, images, SamplingParams(stream=True), 30)
    whole = harness.submit(messages, images, SamplingParams(stream=False), 30)
    assert streamed.wait().token_ids == whole.wait().token_ids
    assert whole.pieces == []
    assert "".join(streamed.pieces) + streamed.result.text == whole.result.text  # type: ignore[union-attr]


def test_each_token_carries_the_text_it_added_and_they_concatenate_to_the_completion(harness: Harness) -> None:
    result = harness.submit(user("describe the image.", 1), [scene(seed=9)], SamplingParams(), 30).wait()
    assert len(result.tokens) == result.completion_tokens
    assert "".join(result.tokens) == result.text
    ids = result.token_ids
    prefixes = [harness.tokenizer.decode(ids[: k + 1], skip_special_tokens=True) for k in range(len(ids))]
    complete = [k for k, prefix in enumerate(prefixes) if "\ufffd" not in prefix]  # prefixes ending on a character
    assert complete and all("".join(result.tokens[: k + 1]) == prefixes[k] for k in complete)


def test_a_stop_string_cuts_the_token_texts_too(harness: Harness) -> None:
    free = harness.submit(user("how many shapes are there?"), [], SamplingParams(), 40).wait()
    stop = free.text[len(free.text) // 2 : len(free.text) // 2 + 3]
    stopped = harness.submit(user("how many shapes are there?"), [], SamplingParams(stop=(stop,)), 40).wait()
    assert "".join(stopped.tokens) == stopped.text == free.text[: free.text.index(stop)]
    assert len(stopped.tokens) == stopped.completion_tokens


def test_the_same_seed_repeats_a_sampled_completion(harness: Harness) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=1234, repetition_penalty=1.1)
    first = harness.submit(user("a picture", 1), [scene(seed=10)], params, 24).wait()
    again = harness.submit(user("a picture", 1), [scene(seed=10)], params, 24).wait()
    assert first.token_ids == again.token_ids
    assert len(first.logprobs) == first.completion_tokens
    assert 0.0 < first.confidence <= 1.0


def test_a_stop_string_ends_the_completion_just_before_it(harness: Harness) -> None:
    messages = user("how many shapes are there?")
    free = harness.submit(messages, [], SamplingParams(), 40)
    text = free.wait() and free.text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), f"the greedy completion is too short to pick a stop string: {text!r}"
    stopped = harness.submit(messages, [], SamplingParams(stop=(stop,), stream=True), 40)
    result = stopped.wait()
    assert result.finish_reason == "stop"
    assert stopped.text == text[: text.index(stop)]
    assert stop not in "".join(stopped.pieces)


def test_max_tokens_ends_the_completion_with_reason_length(harness: Harness, reference: LlavaReference) -> None:
    assert len(reference.greedy(user("hi"), [], 3)) == 3, "pick a prompt that does not end early"
    result = harness.submit(user("hi"), [], SamplingParams(), 3).wait()
    assert (result.completion_tokens, result.finish_reason) == (3, "length")


def test_a_cancelled_request_leaves_the_batch_and_the_next_one_is_served(
    harness: Harness, reference: LlavaReference
) -> None:
    messages, images = user("describe", 1), [scene(seed=11)]
    assert len(reference.greedy(messages, images, 400)) == 400, "pick a prompt that does not end early"
    long = harness.submit(messages, images, SamplingParams(stream=True), 400)
    assert long.first_text.wait(WAIT_S)
    long.cancel.set()
    assert long.done.wait(WAIT_S) and long.outcome == "cancelled"
    assert "cancelled" in harness.finished
    assert len(long.pieces) < 400
    next_one = harness.submit(user("hi"), [], SamplingParams(), 4).wait()
    assert next_one.completion_tokens >= 1
    deadline = time.monotonic() + WAIT_S  # the engine retires a sequence just after sending its result
    while harness.engine.running:
        assert time.monotonic() < deadline, "a sequence is still running"
        time.sleep(0.01)


def test_a_cancel_by_request_id_stops_only_that_request(harness: Harness) -> None:
    keep = harness.submit(user("hi"), [], SamplingParams(), 60, request_id="keep")
    stop = harness.submit(user("hi"), [], SamplingParams(stream=True), 400, request_id="stop-me")
    counts: list[int] = []
    harness.engine.submit(CancelRequest("stop-me", counts.append))
    assert stop.done.wait(WAIT_S) and stop.outcome == "cancelled"
    assert keep.wait().completion_tokens >= 1
    harness.engine.submit(CancelRequest("no-such-id", counts.append))
    deadline = time.monotonic() + WAIT_S
    while len(counts) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert counts == [1, 0]


def test_a_stream_interval_coalesces_pieces_but_keeps_the_text(harness: Harness, tiny_llava: Path) -> None:
    model = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    config = EngineConfig(harness.checkpoint.image_token_id, harness.checkpoint.eos_token_ids, 16, 8192, 3600.0)
    coalescing = Engine(model, harness.tokenizer, config).start()
    try:
        ids = prompt_ids(
            harness.tokenizer, parse_messages(json.dumps(user("hi")).encode(), harness.rules), harness.rules
        )
        sink = Collector()
        coalescing.submit(GenerationRequest(ids, None, SamplingParams(stream=True), 30, sink))
        result = sink.wait()
    finally:
        coalescing.stop()
    unstreamed = harness.submit(user("hi"), [], SamplingParams(), 30).wait()
    assert len(sink.pieces) <= 1  # the first piece at once, the rest with the final response
    assert "".join(sink.pieces) + result.text == unstreamed.text


class CountingPolls(Collector):
    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def is_cancelled(self) -> bool:
        self.polls += 1
        return super().is_cancelled()


def test_the_cancel_poll_interval_bounds_how_often_a_requests_cancellation_is_read(
    harness: Harness, tiny_llava: Path
) -> None:
    model = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    ids = prompt_ids(harness.tokenizer, parse_messages(json.dumps(user("hi")).encode(), harness.rules), harness.rules)
    polls = {}
    for interval in (0.0, 3600.0):
        config = EngineConfig(
            harness.checkpoint.image_token_id,
            harness.checkpoint.eos_token_ids,
            16,
            8192,
            cancel_poll_interval_s=interval,
        )
        engine = Engine(model, harness.tokenizer, config).start()
        try:
            sink = CountingPolls()
            engine.submit(GenerationRequest(ids, None, SamplingParams(), 30, sink))
            result = sink.wait()
        finally:
            engine.stop()
        polls[interval] = sink.polls
    assert polls[0.0] >= result.completion_tokens - 1  # every step reads it
    assert polls[3600.0] <= 1  # the first step at most (monotonic time may be younger than an hour)


def test_a_cancel_that_overtakes_its_request_still_stops_it(harness: Harness) -> None:
    counts: list[int] = []
    harness.engine.submit(CancelRequest("early", counts.append))
    late = harness.submit(user("hi"), [], SamplingParams(), 50, request_id="early")
    assert late.done.wait(WAIT_S) and late.outcome == "cancelled"
    assert counts == [0]


def test_a_request_whose_prefill_fails_fails_alone(harness: Harness, reference: LlavaReference) -> None:
    running = harness.submit(user("describe", 1), [scene(seed=12)], SamplingParams(stream=True), 200)
    assert running.first_text.wait(WAIT_S)
    parsed = parse_messages(json.dumps(user("what?", 1)).encode(), harness.rules)
    ids = prompt_ids(harness.tokenizer, parsed, harness.rules)
    broken = Collector()  # one image row short of its 16 image tokens: the splice cannot succeed
    short = reference.image_embeds([scene(seed=13)]).flatten(0, 1)[:-1]
    harness.engine.submit(GenerationRequest(ids, short, SamplingParams(), 5, broken))
    assert broken.done.wait(WAIT_S) and broken.outcome == "error: internal error"
    assert running.wait().completion_tokens >= 1


def test_stopping_the_engine_answers_every_request_it_holds(harness: Harness, tiny_llava: Path) -> None:
    model = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    config = EngineConfig(harness.checkpoint.image_token_id, harness.checkpoint.eos_token_ids, 1, 8192)
    engine = Engine(model, harness.tokenizer, config).start()
    ids = prompt_ids(harness.tokenizer, parse_messages(json.dumps(user("hi")).encode(), harness.rules), harness.rules)
    sinks = [Collector() for _ in range(3)]
    for sink in sinks:
        engine.submit(GenerationRequest(ids, None, SamplingParams(), 400, sink))
    engine.stop()
    for sink in sinks:
        assert sink.done.wait(WAIT_S)
        assert sink.outcome in ("final", "error: the server is shutting down")
    assert not engine.alive


def test_requests_past_the_waiting_bound_are_refused_at_once_and_room_frees_as_slots_do(
    harness: Harness, tiny_llava: Path
) -> None:
    model = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    config = EngineConfig(
        harness.checkpoint.image_token_id, harness.checkpoint.eos_token_ids, 1, 8192, max_waiting_requests=2
    )
    engine = Engine(model, harness.tokenizer, config).start()
    ids = prompt_ids(harness.tokenizer, parse_messages(json.dumps(user("hi")).encode(), harness.rules), harness.rules)
    try:
        running = Collector()
        engine.submit(GenerationRequest(ids, None, SamplingParams(stream=True), 400, running, "running"))
        assert running.first_text.wait(WAIT_S)  # it holds the only slot
        waiting = [Collector() for _ in range(2)]
        for sink in waiting:
            engine.submit(GenerationRequest(ids, None, SamplingParams(), 3, sink))
        started = time.monotonic()
        with pytest.raises(EngineBusyError, match=r"busy: 2 requests already wait .*max_waiting_requests"):
            engine.submit(GenerationRequest(ids, None, SamplingParams(), 3, Collector()))
        assert time.monotonic() - started < 1.0  # refused, not queued behind the running request
        counts: list[int] = []
        engine.submit(CancelRequest("running", counts.append))  # cancels always pass the bound
        assert running.done.wait(WAIT_S) and running.outcome == "cancelled"
        for sink in waiting:
            assert sink.wait().completion_tokens >= 1
        admitted = Collector()
        engine.submit(GenerationRequest(ids, None, SamplingParams(), 3, admitted))  # room again
        assert admitted.wait().completion_tokens >= 1
    finally:
        engine.stop()


def test_prefill_and_decode_steps_run_with_the_thread_counts_the_engine_sets_in_its_thread(
    harness: Harness, tiny_llava: Path, reference: LlavaReference
) -> None:
    model = load_language_model(tiny_llava, torch.float32, torch.device("cpu"))
    seen: list[tuple[str, int]] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(("prefill" if kwargs.get("inputs_embeds") is not None else "decode", torch.get_num_threads()))

    model.register_forward_pre_hook(record, with_kwargs=True)
    caller_threads = torch.get_num_threads()
    decode_threads, prefill_threads = caller_threads + 1, caller_threads + 2
    checkpoint = harness.checkpoint
    config = EngineConfig(
        checkpoint.image_token_id,
        checkpoint.eos_token_ids,
        16,
        8192,
        decode_threads=decode_threads,
        prefill_threads=prefill_threads,
    )
    engine = Engine(model, harness.tokenizer, config).start()
    messages = user("describe the image.", 1)
    try:
        parsed = parse_messages(json.dumps(messages).encode(), harness.rules)
        ids = prompt_ids(harness.tokenizer, parsed, harness.rules)
        sink = Collector()
        embeds = reference.image_embeds([scene(seed=21)]).flatten(0, 1)
        engine.submit(GenerationRequest(ids, embeds, SamplingParams(), 12, sink))
        result = sink.wait()
    finally:
        engine.stop()
    assert result.token_ids == reference.greedy(messages, [scene(seed=21)], 12)
    assert {threads for phase, threads in seen if phase == "prefill"} == {prefill_threads}
    assert {threads for phase, threads in seen if phase == "decode"} == {decode_threads}
    assert torch.get_num_threads() == caller_threads  # the caller's thread keeps its own count
