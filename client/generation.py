"""Text generation on ``llava`` (with images) or ``llava_decoder`` (text only), streamed over gRPC's
bidirectional stream or HTTP's ``generate_stream`` (server-sent events).

A stream yields ``str`` text pieces, then one ``Completion``. Leaving the iteration early (``break``, an
exception, closing the generator) cancels the request on the server: the gRPC stream is cancelled, and
because Triton 2.51 neither passes that on into a running ensemble nor cancels on an HTTP disconnect, the
client also asks ``llava_decoder`` to stop the request by its id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client.errors import InvalidInputError, ServerUnavailableError, VLMError, translate
from client.images import ImageLike, to_image_bytes

IMAGE_MODEL, TEXT_MODEL = "llava", "llava_decoder"
_TYPES = {
    "max_tokens": ("INT32", np.int32),
    "temperature": ("FP32", np.float32),
    "top_p": ("FP32", np.float32),
    "top_k": ("INT32", np.int32),
    "seed": ("INT64", np.int64),
    "repetition_penalty": ("FP32", np.float32),
}


@dataclass(frozen=True)
class Completion:
    text: str  # the whole completion
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] = field(repr=False)
    logprobs: list[float] = field(repr=False)
    confidence: float


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, Any]]
    images: Sequence[ImageLike] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    stop: Sequence[str] = ()
    stream: bool = True  # False: the server sends the whole text in its one final response
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # unguessable: a cancel names it

    @property
    def model(self) -> str:
        return IMAGE_MODEL if self.images else TEXT_MODEL

    def scalars(self) -> dict[str, int | float]:
        return {name: getattr(self, name) for name in _TYPES if getattr(self, name) is not None}

    def grpc_inputs(self) -> list[grpcclient.InferInput]:
        arrays: dict[str, tuple[str, np.ndarray]] = {
            "messages": ("BYTES", np.array([json.dumps(self.messages).encode()], dtype=object)),
            "stream": ("BOOL", np.array([self.stream])),
        }
        if self.images:
            arrays["image"] = ("BYTES", np.array([to_image_bytes(i) for i in self.images], dtype=object))
        if self.stop:
            arrays["stop"] = ("BYTES", np.array([s.encode() for s in self.stop], dtype=object))
        for name, value in self.scalars().items():
            triton_type, dtype = _TYPES[name]
            arrays[name] = (triton_type, np.array([value], dtype=dtype))
        inputs = []
        for name, (triton_type, array) in arrays.items():
            tensor = grpcclient.InferInput(name, list(array.shape), triton_type)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return inputs

    def http_body(self) -> bytes:
        """Triton's generate extension: each JSON field fills the input of that name; images as data URLs."""
        body: dict[str, Any] = {
            "id": self.request_id,
            "messages": json.dumps(self.messages),
            "stream": self.stream,
            **self.scalars(),
        }
        if self.images:
            body["image"] = [_data_url(to_image_bytes(image)) for image in self.images]
        if self.stop:
            body["stop"] = list(self.stop)
        return json.dumps(body).encode()


def _data_url(blob: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(blob).decode()


class _Accumulator:
    def __init__(self) -> None:
        self.text = ""

    def piece(self, outputs: dict[str, Any]) -> str:
        piece = outputs["text_output"]
        self.text += piece
        return piece

    def completion(self, outputs: dict[str, Any]) -> Completion:
        return Completion(
            text=self.text,
            finish_reason=outputs["finish_reason"],
            prompt_tokens=int(outputs["prompt_tokens"]),
            completion_tokens=int(outputs["completion_tokens"]),
            token_ids=[int(t) for t in outputs["token_ids"]],
            logprobs=[float(p) for p in outputs["logprobs"]],
            confidence=float(outputs["confidence"]),
        )


def _scalar(value: Any) -> Any:
    array = np.asarray(value).reshape(-1)
    item = array[0] if array.size == 1 else array
    return item.decode() if isinstance(item, bytes) else item


def grpc_stream(url: str, request: GenerationRequest, timeout: float) -> Iterator[str | Completion]:
    client = grpcclient.InferenceServerClient(url)
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    finished = False
    try:
        # No stream deadline: a long generation is fine as long as each response comes within ``timeout``.
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer(
            request.model, request.grpc_inputs(), request_id=request.request_id, enable_empty_final_response=True
        )
        accumulated = _Accumulator()
        while True:
            try:
                result, error = responses.get(timeout=timeout)
            except queue.Empty:
                raise VLMError(f"no response within {timeout} s") from None
            if error is not None:
                failure = _grpc_error(error)
                finished = isinstance(failure, InvalidInputError)  # otherwise the request may still run
                raise failure
            response = result.get_response()
            names = [output.name for output in response.outputs]
            outputs = {name: _scalar(result.as_numpy(name)) for name in names}
            if "token_ids" in names:
                outputs["token_ids"] = result.as_numpy("token_ids").tolist()
                outputs["logprobs"] = result.as_numpy("logprobs").tolist()
            if outputs.get("text_output"):
                yield accumulated.piece(outputs)
            if "finish_reason" in outputs:
                finished = True
                yield accumulated.completion(outputs)
                return
    finally:
        client.stop_stream(cancel_requests=not finished)
        client.close()
        if not finished:
            _grpc_cancel(url, request.request_id, timeout)


def _grpc_cancel(url: str, request_id: str, timeout: float) -> None:
    client = grpcclient.InferenceServerClient(url)
    responses: queue.Queue[Any] = queue.Queue()
    try:
        client.start_stream(callback=lambda result, error: responses.put(error), stream_timeout=timeout)
        cancel = grpcclient.InferInput("cancel", [1], "BYTES")
        cancel.set_data_from_numpy(np.array([request_id.encode()], dtype=object))
        client.async_stream_infer(TEXT_MODEL, [cancel])
        responses.get(timeout=timeout)
    except (queue.Empty, InferenceServerException):
        pass  # best effort: the stream is already gone from this client's side
    finally:
        client.stop_stream()
        client.close()


def http_stream(url: str, request: GenerationRequest, timeout: float) -> Iterator[str | Completion]:
    http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local to its clients
    post = urllib.request.Request(
        f"http://{url}/v2/models/{request.model}/generate_stream",
        data=request.http_body(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    try:
        response = http.open(post, timeout=timeout)
    except urllib.error.HTTPError as error:
        # A request rejected before streaming starts gets its status with one event (or a JSON body).
        body = error.read().strip().removeprefix(b"data: ")
        try:
            message = json.loads(body).get("error", str(error))
        except ValueError:
            message = str(error)
        kind = {400: InvalidInputError, 502: ServerUnavailableError, 503: ServerUnavailableError}
        raise kind.get(error.code, VLMError)(message) from None
    except OSError as error:
        raise ServerUnavailableError(f"{url}: {getattr(error, 'reason', error)}") from None
    accumulated = _Accumulator()
    finished = False
    try:
        for item in _read_events(response, accumulated):
            finished = isinstance(item, Completion)  # the caller may stop reading right after it
            yield item
    except TimeoutError:
        raise VLMError(f"no response within {timeout} s") from None
    except InvalidInputError:
        finished = True
        raise
    finally:
        response.close()
        if not finished:
            _http_cancel(http, url, request.request_id, timeout)


def _http_cancel(http: urllib.request.OpenerDirector, url: str, request_id: str, timeout: float) -> None:
    cancel = urllib.request.Request(
        f"http://{url}/v2/models/{TEXT_MODEL}/generate",
        data=json.dumps({"cancel": request_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with contextlib.suppress(OSError):  # best effort: the server may be gone
        http.open(cancel, timeout=timeout).close()


def _read_events(response: Any, accumulated: _Accumulator) -> Iterator[str | Completion]:
    for line in response:
        if not line.startswith(b"data: "):
            continue
        event = json.loads(line[len(b"data: ") :])
        if "error" in event:
            raise classify_stream_error(event["error"])
        if event.get("text_output"):
            yield accumulated.piece(event)
        if "finish_reason" in event:
            event["token_ids"] = event.get("token_ids", [])
            event["logprobs"] = event.get("logprobs", [])
            yield accumulated.completion(event)
            return
    raise VLMError("the stream ended without a final response")


# Every rejection of a request names its field first ("max_tokens: ...", "image[1]: ..."), after the
# ensemble's "in ensemble 'llava', " when it came through one; the server's own failures say "internal error".
_FIELD_ERROR = re.compile(r"^(in ensemble '[^']+', )?[a-z_]+(\[\d+\])?[\w.\[\]]*: ")


def classify_stream_error(message: str) -> VLMError:
    """Streamed errors (gRPC stream responses, server-sent events) carry no status code, only the message."""
    if _FIELD_ERROR.match(message) and "internal error" not in message:
        return InvalidInputError(message)
    return VLMError(message)


def _grpc_error(error: object) -> VLMError:
    """Transport failures carry a gRPC status; the server's responses only a message."""
    if isinstance(error, InferenceServerException):
        if error.status():
            return translate(error)
        return classify_stream_error(error.message() or "")
    return VLMError(str(error))
