"""``VLMClient``: the served tasks behind plain Python calls, over gRPC or HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from client.errors import ServerUnavailableError, VLMError, translate
from client.generation import Completion, GenerationRequest, grpc_stream, http_stream
from client.images import ImageLike, to_image_bytes

DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
DEFAULT_TEMPLATE = "a photo of a {}"


class VLMClient:
    def __init__(self, url: str | None = None, protocol: str = "grpc", timeout: float = 60.0) -> None:
        if protocol not in DEFAULT_URLS:
            raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.timeout = timeout
        self._module: ModuleType = grpcclient if protocol == "grpc" else httpclient
        if protocol == "grpc":
            self._client = grpcclient.InferenceServerClient(self.url)
        else:
            self._client = httpclient.InferenceServerClient(
                self.url, connection_timeout=timeout, network_timeout=timeout
            )

    def __enter__(self) -> VLMClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _bytes_input(self, name: str, items: Sequence[bytes]) -> object:
        tensor = self._module.InferInput(name, [len(items)], "BYTES")
        tensor.set_data_from_numpy(np.array(list(items), dtype=object))
        return tensor

    def _infer(self, model: str, inputs: list[object], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        extra = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        try:
            result = self._client.infer(model, inputs, outputs=requested, **extra)
        except InferenceServerException as error:
            raise translate(error) from None
        except OSError as error:  # the HTTP client raises socket errors as they are
            raise ServerUnavailableError(f"{self.url}: {error.strerror or error}") from None
        return {name: result.as_numpy(name) for name in outputs}

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """L2-normalised image embeddings, one row per image."""
        blobs = [to_image_bytes(image) for image in images]
        return self._infer("clip_image_embed", [self._bytes_input("image", blobs)], ["image_embeds"])["image_embeds"]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, one row per text."""
        blobs = [text.encode("utf-8") for text in texts]
        return self._infer("clip_text_embed", [self._bytes_input("text", blobs)], ["text_embeds"])["text_embeds"]

    def rank_texts(self, images: Sequence[ImageLike], texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``logits_per_image`` and ``probs`` (softmax over the texts), both [len(images), len(texts)]."""
        inputs = [
            self._bytes_input("image", [to_image_bytes(image) for image in images]),
            self._bytes_input("text", [text.encode("utf-8") for text in texts]),
        ]
        return self._infer("clip_rank", inputs, ["logits_per_image", "probs"])

    def classify(self, image: ImageLike, labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> dict[str, float]:
        """Zero-shot classification: label -> probability, most likely first."""
        probs = self.rank_texts([image], [template.format(label) for label in labels])["probs"][0]
        order = np.argsort(-probs, kind="stable")
        return {labels[i]: float(probs[i]) for i in order}

    def generate_stream(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any
    ) -> Iterator[str | Completion]:
        """Stream a reply to ``messages``: text pieces, then the ``Completion``. ``params``: max_tokens,
        temperature, top_p, top_k, seed, repetition_penalty, stop. Leaving the loop early cancels the request."""
        request = GenerationRequest(messages, images, **params)
        stream = grpc_stream if self.protocol == "grpc" else http_stream
        return stream(self.url, request, self.timeout)

    def generate(self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any) -> Completion:
        """The whole reply in one response (the server does not stream it)."""
        request = GenerationRequest(messages, images, stream=False, **params)
        stream = grpc_stream if self.protocol == "grpc" else http_stream
        for item in stream(self.url, request, self.timeout):
            if isinstance(item, Completion):
                return item
        raise VLMError("the stream ended without a final response")
