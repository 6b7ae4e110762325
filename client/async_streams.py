"""Asynchronous generation streams: ``tritonclient.grpc.aio``'s bidirectional stream, and HTTP's
``generate_stream`` read with aiohttp (the library under ``tritonclient.http.aio``). Same requests, same
responses and the same cancellation as ``client.streams``: leaving the iteration early cancels the stream and
asks the decoder to stop the request by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerUnavailableError,
    VLMError,
    from_status,
)
from client.generation import Completion, GenerationRequest, ResponseReader, cancel_body, grpc_outputs, http_error
from client.retry import RetryPolicy
from client.streams import grpc_error

AsyncStream = AsyncIterator[str | Completion]
_NOT_RUNNING = (InvalidInputError, ModelNotReadyError, ServerUnavailableError)  # the request never ran


def _grpc_inputs(arrays: dict[str, tuple[str, np.ndarray]]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, (triton_type, array) in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), triton_type)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


async def _one(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield request


async def grpc_stream(client: grpcaio.InferenceServerClient, request: GenerationRequest, timeout: float) -> AsyncStream:
    first = {"model_name": request.model, "inputs": _grpc_inputs(request.arrays()), "request_id": request.request_id}
    responses = client.stream_infer(_one(first))
    reader = ResponseReader()
    try:
        while not reader.finished:
            try:
                result, error = await asyncio.wait_for(responses.__anext__(), timeout)
            except TimeoutError:
                raise RequestTimeoutError(f"no response within {timeout} s") from None
            except grpc.RpcError as rpc_error:  # the aio stream raises transport failures as they are
                failure = from_status(str(rpc_error.code()), rpc_error.details() or str(rpc_error.code()))
                reader.finished = isinstance(failure, _NOT_RUNNING)
                raise reader.failure(failure) from None
            except StopAsyncIteration:
                raise reader.failure(VLMError("the stream ended without a final response")) from None
            if error is not None:
                failure = grpc_error(error)
                reader.finished = isinstance(failure, _NOT_RUNNING)
                raise reader.failure(failure)
            for item in reader.read(grpc_outputs(result)):
                yield item
    finally:
        if not reader.finished:
            responses.cancel()
            await _grpc_cancel(client, request, timeout)


async def _grpc_cancel(client: grpcaio.InferenceServerClient, request: GenerationRequest, timeout: float) -> None:
    cancel = np.array([request.request_id.encode()], dtype=object)
    responses = client.stream_infer(
        _one({"model_name": request.text_model, "inputs": _grpc_inputs({"cancel": ("BYTES", cancel)})})
    )
    with contextlib.suppress(TimeoutError, StopAsyncIteration, grpc.RpcError, InferenceServerException):
        await asyncio.wait_for(responses.__anext__(), timeout)  # best effort: the server may be gone
    responses.cancel()


async def http_stream(
    session: aiohttp.ClientSession, url: str, request: GenerationRequest, timeout: float
) -> AsyncStream:
    reader = ResponseReader()
    # No total deadline: a long generation is fine as long as each piece comes within ``timeout``.
    limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    try:
        async with session.post(
            f"http://{url}/v2/models/{request.model}/generate_stream",
            data=request.http_body(),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
            timeout=limits,
        ) as response:
            if response.status != 200:
                reader.finished = True
                raise http_error(response.status, await response.read())
            buffer = b""
            async for chunk in response.content.iter_any():  # events can outgrow aiohttp's line limit
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    try:
                        items = reader.event(line)
                    except InvalidInputError:
                        reader.finished = True
                        raise
                    for item in items:
                        yield item
                    if reader.finished:
                        return
            raise reader.failure(VLMError("the stream ended without a final response"))
    except (OSError, aiohttp.ClientError, TimeoutError) as error:
        failure = transport_error(url, error)
        reader.finished = reader.finished or (isinstance(failure, ServerUnavailableError) and not reader.text)
        raise reader.failure(failure) from None
    finally:
        if not reader.finished:
            await _http_cancel(session, url, request, timeout)


async def _http_cancel(session: aiohttp.ClientSession, url: str, request: GenerationRequest, timeout: float) -> None:
    with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):  # best effort: the server may be gone
        async with session.post(
            f"http://{url}/v2/models/{request.text_model}/generate",
            data=cancel_body(request.request_id),
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            await response.read()


def transport_error(url: str, error: BaseException) -> VLMError:
    """aiohttp's and asyncio's failures as the client's errors."""
    if isinstance(error, TimeoutError):
        return RequestTimeoutError(f"{url}: no answer within the timeout")
    if isinstance(error, OSError | aiohttp.ClientConnectionError):
        return ServerUnavailableError(f"{url}: {getattr(error, 'strerror', None) or error}")
    return VLMError(f"{url}: {error}")


async def retrying(policy: RetryPolicy, open_stream: Callable[[], AsyncStream]) -> AsyncStream:
    """Retries a stream that failed before its first item (nothing reached the caller yet)."""
    attempt = 1
    while True:
        stream = open_stream()
        try:
            first = await anext(stream)
        except VLMError as error:
            if not policy.should_retry(attempt, error):
                raise
            await asyncio.sleep(policy.delay_s(attempt))
            attempt += 1
            continue
        try:
            yield first
            async for item in stream:
                yield item
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # closing this generator cancels the stream
        return
