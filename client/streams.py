"""Synchronous generation streams: gRPC's bidirectional stream and HTTP's ``generate_stream`` (server-sent
events). Each yields ``str`` text pieces, then one ``Completion``.

Leaving the iteration early (``break``, an exception, closing the generator) cancels the request on the
server: the gRPC stream is cancelled, and because Triton 2.51 neither passes that on into a running ensemble
nor cancels on an HTTP disconnect, the client also asks the decoder to stop the request by its id.
"""

from __future__ import annotations

import contextlib
import queue
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client.channel import grpc_channel_args
from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerUnavailableError,
    VLMError,
    from_os_error,
    translate,
)
from client.generation import (
    Completion,
    GenerationRequest,
    ResponseReader,
    cancel_body,
    classify_stream_error,
    grpc_outputs,
    http_error,
)
from client.retry import RetryPolicy

Stream = Iterator[str | Completion]


def grpc_stream(url: str, request: GenerationRequest, timeout: float) -> Stream:
    client = grpcclient.InferenceServerClient(url, channel_args=grpc_channel_args())
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    reader = ResponseReader()
    try:
        # No stream deadline: a long generation is fine as long as each response comes within ``timeout``.
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        try:
            client.async_stream_infer(
                request.model,
                [_grpc_input(name, *typed) for name, typed in request.arrays().items()],
                request_id=request.request_id,
                enable_empty_final_response=True,
            )
        except InferenceServerException as error:
            if responses.empty():
                raise translate(error) from None
            # else the stream already failed (no server, say) and its callback holds the reason, read below
        while not reader.finished:
            try:
                result, error = responses.get(timeout=timeout)
            except queue.Empty:
                raise RequestTimeoutError(f"no response within {timeout} s") from None
            if error is not None:
                failure = grpc_error(error)
                # A rejected request is not running; any other failure may leave it running on the server.
                reader.finished = isinstance(failure, InvalidInputError | ModelNotReadyError | ServerUnavailableError)
                raise reader.failure(failure)
            yield from reader.read(grpc_outputs(result))
    finally:
        client.stop_stream(cancel_requests=not reader.finished)
        client.close()
        if not reader.finished:
            _grpc_cancel(url, request, timeout)


def _grpc_input(name: str, triton_type: str, array: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), triton_type)
    tensor.set_data_from_numpy(array)
    return tensor


def _grpc_cancel(url: str, request: GenerationRequest, timeout: float) -> None:
    client = grpcclient.InferenceServerClient(url, channel_args=grpc_channel_args())
    responses: queue.Queue[Any] = queue.Queue()
    try:
        client.start_stream(callback=lambda result, error: responses.put(error), stream_timeout=timeout)
        cancel = _grpc_input("cancel", "BYTES", np.array([request.request_id.encode()], dtype=object))
        client.async_stream_infer(request.text_model, [cancel])
        responses.get(timeout=timeout)
    except (queue.Empty, InferenceServerException):
        pass  # best effort: the server may be gone
    finally:
        client.stop_stream()
        client.close()


def http_stream(url: str, request: GenerationRequest, timeout: float) -> Stream:
    http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local to its clients
    post = urllib.request.Request(
        f"http://{url}/v2/models/{request.model}/generate_stream",
        data=request.http_body(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    try:
        response = http.open(post, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise http_error(error.code, error.read()) from None
    except OSError as error:
        raise from_os_error(url, error) from None
    reader = ResponseReader()
    try:
        for line in response:
            try:
                yield from reader.event(line)
            except InvalidInputError:
                reader.finished = True
                raise
            if reader.finished:
                return
        raise reader.failure(VLMError("the stream ended without a final response"))
    except OSError as error:
        raise reader.failure(from_os_error(url, error)) from None
    finally:
        response.close()
        if not reader.finished:
            _http_cancel(http, url, request, timeout)


def _http_cancel(http: urllib.request.OpenerDirector, url: str, request: GenerationRequest, timeout: float) -> None:
    cancel = urllib.request.Request(
        f"http://{url}/v2/models/{request.text_model}/generate",
        data=cancel_body(request.request_id),
        headers={"Content-Type": "application/json"},
    )
    with contextlib.suppress(OSError):  # best effort: the server may be gone
        http.open(cancel, timeout=timeout).close()


def grpc_error(error: object) -> VLMError:
    """Transport failures carry a gRPC status; the server's responses only a message."""
    if isinstance(error, InferenceServerException):
        if error.status():
            return translate(error)
        return classify_stream_error(error.message() or "")
    return VLMError(str(error))


def retrying(policy: RetryPolicy, open_stream: Callable[[], Stream]) -> Stream:
    """Retries a stream that failed before its first item (nothing reached the caller yet)."""
    attempt = 1
    while True:
        stream = open_stream()
        try:
            first = next(stream)
        except VLMError as error:
            if not policy.should_retry(attempt, error):
                raise
            time.sleep(policy.delay_s(attempt))
            attempt += 1
            continue
        with contextlib.closing(stream):  # closing this generator closes (and so cancels) the stream
            yield first
            yield from stream
        return
