"""``VLMClient``: the served tasks behind plain Python calls, over gRPC or HTTP."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tqdm import tqdm
from tritonclient.utils import InferenceServerException

from client import prompts
from client.catalog import ServedModel, from_configs, stat_names
from client.channel import grpc_channel_args
from client.embeddings import TEXT_EMBEDDING_OUTPUTS, TextEmbeddings
from client.errors import InvalidInputError, from_os_error, translate
from client.generation import Completion, GenerationRequest, check_declared, declared_inputs
from client.images import ImageLike, to_image_bytes
from client.models import ModelNames
from client.ranking import DEFAULT_TEMPLATE, Ranked, classification, ranking
from client.retry import RetryPolicy, call_with_retry
from client.search import PROBE_TEXT, SearchHit, SearchIndex, batches, images_in
from client.streams import grpc_stream, http_stream, retrying

DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
QuestionPair = tuple[ImageLike, str]


def model_names(models: ModelNames | None, embedding_model: str | None, chat_model: str | None) -> ModelNames:
    """The Triton models a client calls: ``models`` as given, or those of the dual encoder and the VLM served under
    these names (``vlm-export model --name``; default ``clip`` and ``llava``)."""
    if models is not None and (embedding_model or chat_model):
        raise ValueError("give models= or the model names (embedding_model=, chat_model=), not both")
    return models or ModelNames.of(embedding_model or "clip", chat_model or "llava")


class VLMClient:
    """Every call retries transient failures (unavailable, busy) as ``retry`` says, and waits at most
    ``timeout`` seconds for each answer (each streamed piece, for a stream). The embedding tasks go to the dual
    encoder named ``embedding_model``, the generation tasks to the VLM named ``chat_model`` (the names the
    repository serves them under: ``served_models()`` lists them)."""

    def __init__(
        self,
        url: str | None = None,
        protocol: str = "grpc",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        models: ModelNames | None = None,
        *,
        embedding_model: str | None = None,
        chat_model: str | None = None,
    ) -> None:
        if protocol not in DEFAULT_URLS:
            raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.models = model_names(models, embedding_model, chat_model)
        self._module: ModuleType = grpcclient if protocol == "grpc" else httpclient
        if protocol == "grpc":
            self._client = grpcclient.InferenceServerClient(self.url, channel_args=grpc_channel_args())
        else:
            self._client = httpclient.InferenceServerClient(
                self.url, connection_timeout=timeout, network_timeout=timeout
            )
        self._streams: weakref.WeakSet[Iterator[str | Completion]] = weakref.WeakSet()
        self._inputs: dict[str, frozenset[str]] = {}  # model -> its declared inputs (HTTP's pixel budget check)

    def __enter__(self) -> VLMClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancels the streams still open, then closes the connection."""
        for stream in list(self._streams):
            stream.close()  # type: ignore[attr-defined]
        self._client.close()

    def using(self, models: ModelNames) -> VLMClient:
        """This client's connection calling other models (``ServedModel.model_names``); close the client it came
        from, not the view."""
        view = copy.copy(self)
        view.models = models
        return view

    def served_models(self) -> dict[str, ServedModel]:
        """Name -> every model the server has loaded, with its kind, family and Triton models (read from the model
        configs, which any client may read: no control key)."""

        def attempt() -> dict[str, ServedModel]:
            try:
                if self.protocol == "grpc":
                    statistics = self._client.get_inference_statistics("", as_json=True)
                    configs = {
                        n: self._client.get_model_config(n, as_json=True)["config"] for n in stat_names(statistics)
                    }
                else:
                    statistics = self._client.get_inference_statistics("")
                    configs = {n: self._client.get_model_config(n) for n in stat_names(statistics)}
            except InferenceServerException as error:
                raise translate(error) from None
            except OSError as error:
                raise from_os_error(self.url, error) from None
            return from_configs(configs)

        return call_with_retry(self.retry, attempt)

    # --- CLIP: embeddings, classification, ranking, search

    def _bytes_input(self, name: str, items: Sequence[bytes]) -> object:
        tensor = self._module.InferInput(name, [len(items)], "BYTES")
        tensor.set_data_from_numpy(np.array(list(items), dtype=object))
        return tensor

    def _infer(self, model: str, inputs: dict[str, Sequence[bytes]], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        tensors = [self._bytes_input(name, items) for name, items in inputs.items()]
        requested = [self._module.InferRequestedOutput(name) for name in outputs]
        extra = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}

        def attempt() -> dict[str, np.ndarray]:
            try:
                result = self._client.infer(model, tensors, outputs=requested, **extra)
            except InferenceServerException as error:
                raise translate(error) from None
            except OSError as error:
                raise from_os_error(self.url, error) from None
            return {name: result.as_numpy(name) for name in outputs}

        return call_with_retry(self.retry, attempt)

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """L2-normalised image embeddings, one row per image."""
        blobs = [to_image_bytes(image) for image in images]
        return self._infer(self.models.image_embed, {"image": blobs}, ["image_embeds"])["image_embeds"]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, one row per text."""
        return self.text_embeddings(texts).embeddings

    def text_embeddings(self, texts: Sequence[str]) -> TextEmbeddings:
        """Embeddings and the number of tokens each text was read as (start and end tokens included)."""
        blobs = [text.encode("utf-8") for text in texts]
        return TextEmbeddings.from_outputs(self._infer(self.models.text_embed, {"text": blobs}, TEXT_EMBEDDING_OUTPUTS))

    def rank_texts(self, images: Sequence[ImageLike], texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``logits_per_image`` and ``probs`` (softmax over the texts), both [len(images), len(texts)]."""
        inputs = {"image": [to_image_bytes(image) for image in images], "text": [t.encode("utf-8") for t in texts]}
        return self._infer(self.models.rank, inputs, ["logits_per_image", "probs"])

    def classify(self, image: ImageLike, labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> dict[str, float]:
        """Zero-shot classification: label -> probability, most likely first."""
        if not labels:
            raise InvalidInputError("labels: give at least one label")
        probs = self.rank_texts([image], [template.format(label) for label in labels])["probs"][0]
        return classification(probs, labels)

    def rank(
        self,
        *,
        text: str | None = None,
        images: Sequence[ImageLike] = (),
        image: ImageLike | None = None,
        texts: Sequence[str] = (),
    ) -> list[Ranked]:
        """``rank(text=..., images=[...])``: the images for a text; ``rank(image=..., texts=[...])``: the texts
        for an image. Best first, each with its index among the candidates."""
        if text is not None and images and image is None and not texts:
            return ranking(self.rank_texts(images, [text])["logits_per_image"][:, 0])
        if image is not None and texts and text is None and not images:
            return ranking(self.rank_texts([image], texts)["logits_per_image"][0])
        raise InvalidInputError("rank: give text= and images=, or image= and texts=")

    def index_folder(
        self, folder: str | Path, index_path: str | Path | None = None, progress: bool = False
    ) -> SearchIndex:
        """Embeds every image under ``folder`` once; saves the index when ``index_path`` is given."""
        paths = images_in(folder)
        vectors = [self.embed_images(batch) for batch in tqdm(batches(paths), disable=not progress, unit="batch")]
        names = [str(path.relative_to(folder)) for path in paths]
        index = SearchIndex(names, np.concatenate(vectors), self.embed_texts([PROBE_TEXT])[0])
        if index_path is not None:
            index.save(index_path)
        return index

    def search(self, index: SearchIndex | str | Path, query: str, k: int = 5) -> list[SearchHit]:
        """The ``k`` images of the index closest to the text ``query``, best first."""
        index = index if isinstance(index, SearchIndex) else SearchIndex.load(index)
        query_vector, probe = self.embed_texts([query, PROBE_TEXT])
        index.check_model(probe)
        return index.top_k(query_vector, k)

    # --- LLaVA: generation tasks

    def _request(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike], stream: bool, **params: Any
    ) -> GenerationRequest:
        models = {"image_model": self.models.llava, "text_model": self.models.decoder}
        return GenerationRequest.of(messages, images, stream, models, **params)

    def _declared_inputs(self, model: str) -> frozenset[str]:
        """The inputs ``model``'s config declares, read once per model."""
        if model not in self._inputs:

            def attempt() -> frozenset[str]:
                try:
                    return declared_inputs(self._client.get_model_config(model))
                except InferenceServerException as error:
                    raise translate(error) from None
                except OSError as error:
                    raise from_os_error(self.url, error) from None

            self._inputs[model] = call_with_retry(self.retry, attempt)
        return self._inputs[model]

    def _stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        if self.protocol == "http" and request.pixel_budget:  # Triton's HTTP endpoint would ignore an undeclared one
            check_declared(request, self._declared_inputs(request.model))
        transport = grpc_stream if self.protocol == "grpc" else http_stream
        stream = retrying(self.retry, lambda: transport(self.url, request, self.timeout))
        self._streams.add(stream)
        return stream

    def generate_stream(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any
    ) -> Iterator[str | Completion]:
        """Stream a reply to ``messages``: text pieces, then the ``Completion``. ``params``: max_tokens,
        temperature, top_p, top_k, seed, repetition_penalty, stop. Leaving the loop early, or closing the
        client, cancels the request on the server."""
        return self._stream(self._request(messages, images, stream=True, **params))

    def generate(self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any) -> Completion:
        """The whole reply in one response (the server does not stream it)."""
        *_, completion = self._stream(self._request(messages, images, stream=False, **params))
        return completion  # type: ignore[return-value]

    def caption(self, image: ImageLike, style: str = "descriptive", **params: Any) -> Completion:
        """Styles: descriptive, creative, technical, poetic (``prompts.CAPTION_STYLES``)."""
        return self.generate(prompts.caption(style), [image], **params)

    def captions(self, image: ImageLike, n: int = 3, style: str = "descriptive", **params: Any) -> list[Completion]:
        """``n`` captions sampled at rising temperatures, each with its own seed (``seed``, ``seed + 1``, ...)."""
        seed = params.pop("seed", 0)
        return [
            self.generate(prompts.caption(style), [image], temperature=t, seed=seed + k, **params)
            for k, t in enumerate(prompts.caption_temperatures(n))
        ]

    def ask(self, image: ImageLike, question: str, **params: Any) -> Completion:
        """Visual question answering."""
        return self.generate(prompts.question(question), [image], **params)

    def batch_ask(
        self, pairs: Sequence[QuestionPair], concurrency: int = 4, progress: bool = True, **params: Any
    ) -> list[Completion]:
        """``ask`` for each (image, question), at most ``concurrency`` at a time; results in input order."""
        if concurrency < 1:
            raise InvalidInputError(f"concurrency: must be at least 1, got {concurrency}")
        results: list[Completion | None] = [None] * len(pairs)
        with (
            ThreadPoolExecutor(max_workers=concurrency) as pool,
            tqdm(total=len(pairs), disable=not progress, unit="question") as bar,
        ):
            futures = {pool.submit(self.ask, image, question, **params): i for i, (image, question) in enumerate(pairs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results  # type: ignore[return-value]

    def chat(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), stream: bool = True, **params: Any
    ) -> Iterator[str | Completion]:
        """A multi-turn conversation: text deltas, then the ``Completion`` (finish reason, token counts,
        confidence). Without ``stream`` the whole text comes as one piece."""
        return self._stream(self._request(messages, images, stream=stream, **params))

    def analyze_document(
        self, image: ImageLike, kind: str | None = "summary", query: str | None = None, **params: Any
    ) -> Completion:
        """Kinds: summary, extract_tables, key_points, numbers, structured (a JSON object: the server constrains
        the answer) (``prompts.DOCUMENT_KINDS``); or a free ``query``."""
        if kind in prompts.DOCUMENT_FORMATS and not query:
            params.setdefault("response_format", prompts.DOCUMENT_FORMATS[kind])
        return self.generate(prompts.document(None if query else kind, query), [image], **params)

    def extract_structured(
        self, image: ImageLike, schema: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """The answer as a JSON object (valid against ``schema`` when one is given): the server constrains the
        answer to JSON; ``{"raw_response": ..., "structured": False}`` only when max_tokens cut it short."""
        params["response_format"] = prompts.json_format(schema)
        return prompts.parse_structured(self.generate(prompts.structured(), [image], **params).text)
