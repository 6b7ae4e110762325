"""Generation requests on ``llava`` (with images) or ``llava_decoder`` (text only), and reading the
responses back: text pieces, then one ``Completion``. The transports are in ``client.streams`` (sync) and
``client.async_streams``; both send the same request and read responses the same way.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    StreamInterruptedError,
    VLMError,
    from_status,
    is_busy_message,
)
from client.field_errors import FieldRef
from client.images import ImageLike, to_image_bytes
from client.parameters import PARAMETERS_BY_NAME
from client.pixel_parameters import PIXEL_PARAMETERS_BY_NAME
from client.video_parameters import VIDEO_PARAMETERS_BY_NAME
from client.videos import VideoLike, to_video_bytes

IMAGE_MODEL, TEXT_MODEL = "llava", "llava_decoder"


@dataclass(frozen=True)
class Alternative:
    """One of the likeliest tokens at a step (OpenAI's ``top_logprobs`` entry)."""

    token_id: int
    token: str
    logprob: float


@dataclass(frozen=True)
class Completion:
    text: str  # the whole completion
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] = field(repr=False)
    logprobs: list[float] = field(repr=False)
    confidence: float  # mean probability of the completion's tokens
    # The text each token added ("" for EOS and for a token ending mid-character, whose character comes with
    # a later token); they concatenate to ``text``. Empty from a server whose decoder predates this output.
    tokens: list[str] = field(default_factory=list, repr=False)
    # Per token, the ``top_logprobs`` likeliest tokens (empty lists when the request asked for none).
    alternatives: list[list[Alternative]] = field(default_factory=list, repr=False)
    video_frames: list[int] = field(default_factory=list)  # frames the model saw of each video, in order

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly fields (without the per-token lists)."""
        lists = ("token_ids", "logprobs", "tokens", "alternatives")
        return {k: v for k, v in asdict(self).items() if k not in lists}


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, Any]]
    images: Sequence[ImageLike] = ()
    # Generation parameters by name (``client.parameters``: max_tokens, temperature, top_p, top_k, min_p, seed,
    # penalties, top_logprobs, min_tokens, ignore_eos); absent ones take the server's defaults.
    numbers: dict[str, int | float | bool] = field(default_factory=dict)
    stop: Sequence[str] = ()
    response_format: dict[str, Any] | None = None  # OpenAI's: {"type": "json_object"} or a "json_schema"
    stream: bool = True  # False: the server sends the whole text in its one final response
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # unguessable: a cancel names it
    image_model: str = IMAGE_MODEL
    text_model: str = TEXT_MODEL  # also the model that cancels a running request by its id
    videos: Sequence[VideoLike] = ()  # placed by {"type": "video"} items, as images by {"type": "image"}
    video_sampling: dict[str, int | float] = field(default_factory=dict)  # video_fps, max_frames
    # min_pixels, max_pixels (client.pixel_parameters): the resize of the images and video frames; only a model whose
    # preprocessing has a pixel budget (the Qwen2-VL family) takes them. Not sent without images or videos.
    pixel_budget: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.numbers) - set(PARAMETERS_BY_NAME) | ({"stream"} & set(self.numbers)))
        if unknown:
            raise TypeError(f"unknown generation parameter {unknown[0]!r}")
        if unknown := sorted(set(self.video_sampling) - set(VIDEO_PARAMETERS_BY_NAME)):
            raise TypeError(f"unknown video parameter {unknown[0]!r}")
        if unknown := sorted(set(self.pixel_budget) - set(PIXEL_PARAMETERS_BY_NAME)):
            raise TypeError(f"unknown pixel budget parameter {unknown[0]!r}")
        integers = {name: v for name, v in self.numbers.items() if PARAMETERS_BY_NAME[name].is_integer}
        for name, value in (integers | self.pixel_budget).items():  # never truncated to an integer on the way
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidInputError(f"expected an integer, got {value!r}", FieldRef(name))

    @classmethod
    def of(
        cls,
        messages: list[dict[str, Any]],
        images: Sequence[ImageLike],
        stream: bool,
        models: dict[str, str],
        **params: Any,
    ) -> GenerationRequest:
        """A request from the client's keyword arguments: numbers by name, ``stop``, ``response_format``."""
        stop, response_format = params.pop("stop", ()) or (), params.pop("response_format", None)
        ids = {"request_id": params.pop("request_id")} if "request_id" in params else {}
        videos = params.pop("videos", ()) or ()
        sampling = {name: params.pop(name) for name in VIDEO_PARAMETERS_BY_NAME if name in params}
        sampling = {name: value for name, value in sampling.items() if value is not None}
        budget = {name: params.pop(name) for name in PIXEL_PARAMETERS_BY_NAME if name in params}
        budget = {name: value for name, value in budget.items() if value is not None}
        numbers = {name: value for name, value in params.items() if value is not None}
        return cls(
            messages, images, numbers, stop, response_format, stream, **ids, **models, videos=videos,
            video_sampling=sampling, pixel_budget=budget,
        )  # fmt: skip

    @property
    def model(self) -> str:
        return self.image_model if self.images or self.videos else self.text_model

    def arrays(self) -> dict[str, tuple[str, np.ndarray]]:
        """Input name -> (Triton datatype, array), for the gRPC clients."""
        arrays: dict[str, tuple[str, np.ndarray]] = {
            "messages": ("BYTES", np.array([json.dumps(self.messages).encode()], dtype=object)),
            "stream": ("BOOL", np.array([self.stream])),
        }
        if self.images:
            arrays["image"] = ("BYTES", np.array([to_image_bytes(i) for i in self.images], dtype=object))
        if self.stop:
            arrays["stop"] = ("BYTES", np.array([s.encode() for s in self.stop], dtype=object))
        if self.response_format is not None:
            arrays["response_format"] = ("BYTES", np.array([json.dumps(self.response_format).encode()], dtype=object))
        if self.videos:
            arrays["video"] = ("BYTES", np.array([to_video_bytes(v) for v in self.videos], dtype=object))
        for name, value in self.number_fields().items():
            parameter = (
                PARAMETERS_BY_NAME.get(name) or VIDEO_PARAMETERS_BY_NAME.get(name) or PIXEL_PARAMETERS_BY_NAME[name]
            )
            arrays[name] = (parameter.triton_type, np.array([value], dtype=parameter.numpy_dtype))
        return arrays

    def number_fields(self) -> dict[str, int | float | bool]:
        """The one-value fields sent: video sampling with videos, the pixel budget with images or videos (a text-only
        turn goes to the decoder, which resizes nothing)."""
        media = bool(self.images or self.videos)
        return {
            **self.numbers,
            **(self.video_sampling if self.videos else {}),
            **(self.pixel_budget if media else {}),
        }

    def http_body(self) -> bytes:
        """Triton's generate extension: each JSON field fills the input of that name; images as data URLs."""
        body: dict[str, Any] = {"id": self.request_id, "messages": json.dumps(self.messages), "stream": self.stream}
        body.update(self.number_fields())
        if self.images:
            body["image"] = [_data_url(to_image_bytes(image)) for image in self.images]
        if self.videos:
            body["video"] = [_data_url(to_video_bytes(video)) for video in self.videos]
        if self.stop:
            body["stop"] = list(self.stop)
        if self.response_format is not None:
            body["response_format"] = json.dumps(self.response_format)
        return json.dumps(body).encode()


def check_declared(request: GenerationRequest, declared: Collection[str]) -> None:
    """Refuse a pixel budget for a model that declares no such input (its preprocessing has none). Over gRPC Triton
    refuses it itself; its HTTP generate endpoint takes a JSON field that names no input as a request parameter and
    ignores it, so the HTTP clients check the model's config first."""
    for name in request.number_fields():
        if name in PIXEL_PARAMETERS_BY_NAME and name not in declared:
            raise InvalidInputError(f"the model {request.model!r} takes no such input", FieldRef(name))


def declared_inputs(config: dict[str, Any]) -> frozenset[str]:
    """A model config's input names (Triton's JSON)."""
    return frozenset(str(entry.get("name", "")) for entry in config.get("input", []) if isinstance(entry, dict))


def cancel_body(request_id: str) -> bytes:
    """``llava_decoder``'s cancel request over HTTP: stop the running request with this id."""
    return json.dumps({"cancel": request_id}).encode()


def _data_url(blob: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(blob).decode()


def _as_list(value: Any) -> list[Any]:
    """Triton's generate_stream JSON gives a one-element array output as a bare scalar."""
    return value if isinstance(value, list) else [value]


class ResponseReader:
    """Turns one request's responses (output name -> value) into text pieces and a final ``Completion``."""

    def __init__(self) -> None:
        self.text = ""
        self.finished = False

    def read(self, outputs: dict[str, Any]) -> list[str | Completion]:
        items: list[str | Completion] = []
        if piece := outputs.get("text_output"):
            self.text += piece
            items.append(piece)
        if "finish_reason" in outputs:
            self.finished = True
            items.append(
                Completion(
                    text=self.text,
                    finish_reason=outputs["finish_reason"],
                    prompt_tokens=int(outputs["prompt_tokens"]),
                    completion_tokens=int(outputs["completion_tokens"]),
                    token_ids=[int(t) for t in _as_list(outputs.get("token_ids", []))],
                    logprobs=[float(p) for p in _as_list(outputs.get("logprobs", []))],
                    confidence=float(outputs["confidence"]),
                    tokens=[str(t) for t in _as_list(outputs.get("tokens", []))],
                    alternatives=_alternatives(outputs),
                    video_frames=[int(n) for n in _as_list(outputs.get("video_frames", []))],
                )
            )
        return items

    def failure(self, error: VLMError) -> VLMError:
        """An error after text has arrived interrupts the stream; the text received so far goes with it."""
        if not self.text or isinstance(error, InvalidInputError | RequestTimeoutError):
            return error
        return StreamInterruptedError(f"the stream broke after {len(self.text)} characters: {error}", self.text)

    def event(self, line: bytes) -> list[str | Completion]:
        """One server-sent event line of ``generate_stream``."""
        if not line.startswith(b"data: "):
            return []
        event = json.loads(line[len(b"data: ") :])
        if "error" in event:
            raise self.failure(classify_stream_error(event["error"]))
        return self.read(event)


def _alternatives(outputs: dict[str, Any]) -> list[list[Alternative]]:
    """Per token, its alternatives; HTTP's JSON gives the [tokens, k] outputs flattened."""
    tokens = int(outputs["completion_tokens"])
    ids = [int(i) for i in _flatten(outputs.get("alternative_ids", []))]
    if not tokens or not ids:
        return [[] for _ in range(tokens)]
    logprobs = [float(p) for p in _flatten(outputs["alternative_logprobs"])]
    texts = [str(t) for t in _flatten(outputs["alternative_tokens"])]
    width = len(ids) // tokens
    rows = [range(row * width, (row + 1) * width) for row in range(tokens)]
    return [[Alternative(ids[k], texts[k], logprobs[k]) for k in row] for row in rows]


def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    return [item for part in value for item in _flatten(part)]


def scalar(value: Any) -> Any:
    array = np.asarray(value).reshape(-1)
    item = array[0] if array.size == 1 else array
    return item.decode() if isinstance(item, bytes) else item


def grpc_outputs(result: Any) -> dict[str, Any]:
    """A gRPC ``InferResult`` as output name -> value (lists for the per-token outputs)."""
    names = [output.name for output in result.get_response().outputs]
    outputs = {name: scalar(result.as_numpy(name)) for name in names}
    for name in ("token_ids", "logprobs", "alternative_ids", "alternative_logprobs", "video_frames"):
        if name in names:
            outputs[name] = result.as_numpy(name).tolist()
    for name in ("tokens", "alternative_tokens"):
        if name in names:
            outputs[name] = [token.decode(errors="replace") for token in result.as_numpy(name).reshape(-1)]
    return outputs


def http_error(code: int, body: bytes) -> VLMError:
    """A request rejected before streaming starts gets its status with one event (or a JSON body)."""
    text = body.strip().removeprefix(b"data: ")
    try:
        message = json.loads(text).get("error", text.decode(errors="replace"))
    except ValueError:
        message = text.decode(errors="replace") or f"HTTP {code}"
    return from_status(str(code), message)


_UNKNOWN_MODEL = re.compile(r"unknown model|is not ready|no available versions")


def classify_stream_error(message: str) -> VLMError:
    """Streamed errors (gRPC stream responses, server-sent events) carry no status code, only the message; a
    rejection of the request carries its field as data (``client.field_errors``)."""
    if (rejection := InvalidInputError.from_server(message)) is not None:
        return rejection
    if is_busy_message(message) or "server is stopping" in message.lower():
        return from_status("", message)
    if _UNKNOWN_MODEL.search(message):  # "llava_decoder: the engine is not ready ..."
        return ModelNotReadyError(message)
    return VLMError(message)
