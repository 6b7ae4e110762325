"""Chat completions on the decoder: n choices, greedy by default, whole or streamed as OpenAI's chunks.

Streams: a role chunk per choice, content deltas as the decoder makes them, then per choice a chunk with
``finish_reason`` (and, with ``logprobs``, every token's log probability: the decoder sends the per-token texts
with its final response, so they ride on that last chunk), then with ``stream_options.include_usage`` a chunk
with ``usage`` and no choices, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from client import AsyncVLMClient, Completion, VLMError
from client.generation import Alternative
from gateway.errors import ApiError, FieldNames, from_vlm_error
from gateway.schemas.chat import (
    AssistantReply,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from gateway.sse import event


@dataclass(frozen=True)
class ChatJob:
    model: str
    messages: list[dict[str, Any]]
    images: list[bytes]
    parameters: list[dict[str, Any]]  # one per choice
    logprobs: bool
    include_usage: bool
    fields: FieldNames  # Triton's field names -> the request's parameters
    retry_after_s: int
    id: str = ""
    created: int = 0

    @classmethod
    def new(cls, **fields: Any) -> ChatJob:
        return cls(**fields, id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()))

    def error(self, error: VLMError) -> ApiError:
        return from_vlm_error(error, self.retry_after_s, self.fields)


def token_logprobs(completion: Completion) -> ChoiceLogprobs:
    if len(completion.tokens) != len(completion.logprobs):
        raise ApiError(502, "the model server did not return per-token texts", code="upstream_error")
    return ChoiceLogprobs(
        content=[
            TokenLogprob(
                token=text,
                logprob=logprob,
                bytes=list(text.encode()),
                top_logprobs=[TopLogprob(token=a.token, logprob=a.logprob, bytes=list(a.token.encode())) for a in top],
            )
            for text, logprob, top in zip(
                completion.tokens, completion.logprobs, _alternatives(completion), strict=True
            )
        ]
    )


def _alternatives(completion: Completion) -> list[list[Alternative]]:
    return completion.alternatives or [[] for _ in completion.tokens]


def usage(completions: Sequence[Completion]) -> Usage:
    prompt = completions[0].prompt_tokens  # every choice answers the same prompt
    completion = sum(c.completion_tokens for c in completions)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


async def complete(vlm: AsyncVLMClient, job: ChatJob) -> ChatCompletion:
    try:
        completions = await asyncio.gather(
            *(vlm.generate(job.messages, job.images, **parameters) for parameters in job.parameters)
        )
    except VLMError as error:
        raise job.error(error) from None
    choices = [
        Choice(
            index=k,
            message=AssistantReply(content=c.text),
            logprobs=token_logprobs(c) if job.logprobs else None,
            finish_reason=c.finish_reason,
        )
        for k, c in enumerate(completions)
    ]
    video_frames = completions[0].video_frames or None  # every choice sees the same frames
    return ChatCompletion(
        id=job.id,
        created=job.created,
        model=job.model,
        choices=choices,
        usage=usage(completions),
        video_frames=video_frames,
    )


async def _merged(vlm: AsyncVLMClient, job: ChatJob) -> AsyncIterator[tuple[int, str | Completion]]:
    """Every choice's stream, interleaved as pieces arrive; closing this cancels the streams still running."""
    queue: asyncio.Queue[tuple[int, str | Completion | VLMError | None]] = asyncio.Queue()

    async def pump(choice: int, parameters: dict[str, Any]) -> None:
        stream = vlm.generate_stream(job.messages, job.images, **parameters)
        try:
            async for item in stream:
                await queue.put((choice, item))
            await queue.put((choice, None))
        except VLMError as error:
            await queue.put((choice, error))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # cancels the request on Triton if unfinished

    tasks = [asyncio.create_task(pump(k, parameters)) for k, parameters in enumerate(job.parameters)]
    running = len(tasks)
    try:
        while running:
            choice, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, VLMError):
                raise job.error(item)
            else:
                yield choice, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _chunk(job: ChatJob, choices: list[ChunkChoice], **extra: Any) -> bytes:
    fields: dict[str, Any] = {"usage": None} if job.include_usage else {}
    chunk = ChatCompletionChunk(
        id=job.id,
        object="chat.completion.chunk",
        created=job.created,
        model=job.model,
        choices=choices,
        system_fingerprint=None,
        **{**fields, **extra},
    )
    return event(chunk.model_dump_json(exclude_unset=True))


def _choice(index: int, delta: Delta, **extra: Any) -> ChunkChoice:
    return ChunkChoice(index=index, delta=delta, **{"logprobs": None, "finish_reason": None, **extra})


async def stream(vlm: AsyncVLMClient, job: ChatJob, on_first_item: Any = None) -> AsyncIterator[bytes]:
    """SSE events. The first piece is awaited before anything is sent, so a rejected request raises ApiError
    (answered with its status) instead of starting a stream."""
    finished: dict[int, Completion] = {}

    def render(choice: int, item: str | Completion) -> bytes:
        if isinstance(item, str):
            return _chunk(job, [_choice(choice, Delta(content=item))])
        finished[choice] = item
        logprobs = token_logprobs(item) if job.logprobs else None
        return _chunk(job, [_choice(choice, Delta(), logprobs=logprobs, finish_reason=item.finish_reason)])

    items = _merged(vlm, job)
    try:
        first = await anext(items)
        if on_first_item is not None:
            on_first_item()
        yield _chunk(job, [_choice(k, Delta(role="assistant", content="")) for k in range(len(job.parameters))])
        yield render(*first)
        async for choice, item in items:
            yield render(choice, item)
    finally:
        await items.aclose()  # type: ignore[attr-defined]
    if job.include_usage:
        yield _chunk(job, [], usage=usage([finished[k] for k in sorted(finished)]))
    yield b"data: [DONE]\n\n"
