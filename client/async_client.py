"""``AsyncVLMClient``: ``VLMClient``'s tasks as coroutines, on ``tritonclient.grpc.aio`` and
``tritonclient.http.aio``. Streams are async iterators; leaving one early, or closing the client, cancels the
request on the server."""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from tqdm import tqdm
from tritonclient.utils import InferenceServerException

from client import async_streams, prompts
from client.catalog import ServedModel, from_configs, stat_names
from client.channel import grpc_channel_args
from client.embeddings import TEXT_EMBEDDING_OUTPUTS, TextEmbeddings
from client.errors import InvalidInputError, translate
from client.generation import Completion, GenerationRequest, check_declared, declared_inputs
from client.images import ImageLike, to_image_bytes
from client.models import ModelNames
from client.ranking import DEFAULT_TEMPLATE, Ranked, classification, ranking
from client.retry import RetryPolicy, call_with_retry_async
from client.search import PROBE_TEXT, SearchHit, SearchIndex, batches, images_in
from client.vlm_client import DEFAULT_URLS, QuestionPair, model_names


class AsyncVLMClient:
    """Create it inside a running event loop (``async with AsyncVLMClient(...) as vlm:``). Models by name as
    ``VLMClient``'s."""

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
        self._grpc: grpcaio.InferenceServerClient | None = None
        self._http: httpaio.InferenceServerClient | None = None
        self._session: aiohttp.ClientSession | None = None
        if protocol == "grpc":
            self._grpc = grpcaio.InferenceServerClient(self.url, channel_args=grpc_channel_args())
        else:
            self._http = httpaio.InferenceServerClient(self.url, conn_timeout=timeout)
            self._session = aiohttp.ClientSession()
        self._streams: weakref.WeakSet[AsyncIterator[str | Completion]] = weakref.WeakSet()

    async def __aenter__(self) -> AsyncVLMClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancels the streams still open, then closes the connections."""
        for stream in list(self._streams):
            await stream.aclose()  # type: ignore[attr-defined]
        if self._grpc is not None:
            await self._grpc.close()
        if self._http is not None:
            await self._http.close()
        if self._session is not None:
            await self._session.close()

    def using(self, models: ModelNames) -> AsyncVLMClient:
        """This client's connection (one gRPC channel) calling other models; close the client it came from, not the
        view. The gateway routes each request to its model this way."""
        view = copy.copy(self)
        view.models = models
        return view

    # --- the server

    async def served_models(self) -> dict[str, ServedModel]:
        """Name -> every model the server has loaded (``VLMClient.served_models``), its configs read concurrently."""

        async def attempt() -> dict[str, ServedModel]:
            try:
                if self._grpc is not None:
                    grpc = self._grpc
                    statistics = await grpc.get_inference_statistics("", as_json=True, client_timeout=self.timeout)
                    names = stat_names(statistics)
                    answers = await asyncio.gather(
                        *(grpc.get_model_config(n, as_json=True, client_timeout=self.timeout) for n in names)
                    )
                    configs = {name: answer["config"] for name, answer in zip(names, answers, strict=True)}
                else:
                    assert self._http is not None
                    statistics = await self._http.get_inference_statistics("")
                    names = stat_names(statistics)
                    answers = await asyncio.gather(*(self._http.get_model_config(n) for n in names))
                    configs = dict(zip(names, answers, strict=True))
            except InferenceServerException as error:
                raise translate(error) from None
            except (OSError, aiohttp.ClientError, TimeoutError) as error:
                raise async_streams.transport_error(self.url, error) from None
            return from_configs(configs)

        return await call_with_retry_async(self.retry, attempt)

    async def is_ready(self, models: Sequence[str] = ()) -> bool:
        """The server is ready and so is each of ``models``; False when it cannot be reached."""
        try:
            if self._grpc is not None:
                checks = [self._grpc.is_server_ready(client_timeout=self.timeout)]
                checks += [self._grpc.is_model_ready(name, client_timeout=self.timeout) for name in models]
            else:
                assert self._http is not None
                checks = [self._http.is_server_ready(), *(self._http.is_model_ready(name) for name in models)]
            return all(await asyncio.gather(*checks))
        except (InferenceServerException, OSError, aiohttp.ClientError, TimeoutError):
            return False

    # --- CLIP: embeddings, classification, ranking, search

    async def _infer(
        self, model: str, inputs: dict[str, Sequence[bytes]], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        module = grpcclient if self._grpc is not None else httpclient
        tensors = []
        for name, items in inputs.items():
            tensor = module.InferInput(name, [len(items)], "BYTES")
            tensor.set_data_from_numpy(np.array(list(items), dtype=object))
            tensors.append(tensor)
        requested = [module.InferRequestedOutput(name) for name in outputs]

        async def attempt() -> dict[str, np.ndarray]:
            try:
                if self._grpc is not None:
                    result = await self._grpc.infer(model, tensors, outputs=requested, client_timeout=self.timeout)
                else:
                    assert self._http is not None
                    result = await self._http.infer(model, tensors, outputs=requested)
            except InferenceServerException as error:
                raise translate(error) from None
            except (OSError, aiohttp.ClientError, TimeoutError) as error:
                raise async_streams.transport_error(self.url, error) from None
            return {name: result.as_numpy(name) for name in outputs}

        return await call_with_retry_async(self.retry, attempt)

    async def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        blobs = [to_image_bytes(image) for image in images]
        return (await self._infer(self.models.image_embed, {"image": blobs}, ["image_embeds"]))["image_embeds"]

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return (await self.text_embeddings(texts)).embeddings

    async def text_embeddings(self, texts: Sequence[str]) -> TextEmbeddings:
        """Embeddings and the number of tokens each text was read as."""
        blobs = [text.encode("utf-8") for text in texts]
        return TextEmbeddings.from_outputs(
            await self._infer(self.models.text_embed, {"text": blobs}, TEXT_EMBEDDING_OUTPUTS)
        )

    async def rank_texts(self, images: Sequence[ImageLike], texts: Sequence[str]) -> dict[str, np.ndarray]:
        inputs = {"image": [to_image_bytes(image) for image in images], "text": [t.encode("utf-8") for t in texts]}
        return await self._infer(self.models.rank, inputs, ["logits_per_image", "probs"])

    async def classify(
        self, image: ImageLike, labels: Sequence[str], template: str = DEFAULT_TEMPLATE
    ) -> dict[str, float]:
        if not labels:
            raise InvalidInputError("labels: give at least one label")
        probs = (await self.rank_texts([image], [template.format(label) for label in labels]))["probs"][0]
        return classification(probs, labels)

    async def rank(
        self,
        *,
        text: str | None = None,
        images: Sequence[ImageLike] = (),
        image: ImageLike | None = None,
        texts: Sequence[str] = (),
    ) -> list[Ranked]:
        if text is not None and images and image is None and not texts:
            return ranking((await self.rank_texts(images, [text]))["logits_per_image"][:, 0])
        if image is not None and texts and text is None and not images:
            return ranking((await self.rank_texts([image], texts))["logits_per_image"][0])
        raise InvalidInputError("rank: give text= and images=, or image= and texts=")

    async def index_folder(self, folder: str | Path, index_path: str | Path | None = None) -> SearchIndex:
        paths = images_in(folder)
        vectors = [await self.embed_images(batch) for batch in batches(paths)]
        names = [str(path.relative_to(folder)) for path in paths]
        index = SearchIndex(names, np.concatenate(vectors), (await self.embed_texts([PROBE_TEXT]))[0])
        if index_path is not None:
            index.save(index_path)
        return index

    async def search(self, index: SearchIndex | str | Path, query: str, k: int = 5) -> list[SearchHit]:
        index = index if isinstance(index, SearchIndex) else SearchIndex.load(index)
        query_vector, probe = await self.embed_texts([query, PROBE_TEXT])
        index.check_model(probe)
        return index.top_k(query_vector, k)

    # --- LLaVA: generation tasks

    def _stream(self, request: GenerationRequest) -> AsyncIterator[str | Completion]:
        async def checked_http_stream() -> AsyncIterator[str | Completion]:
            # Triton's HTTP endpoint would ignore an input the model does not declare (client.generation)
            assert self._http is not None and self._session is not None
            if request.pixel_budget:
                try:
                    config = await self._http.get_model_config(request.model)
                except InferenceServerException as error:
                    raise translate(error) from None
                check_declared(request, declared_inputs(config))
            async for item in async_streams.http_stream(self._session, self.url, request, self.timeout):
                yield item

        def open_stream() -> AsyncIterator[str | Completion]:
            if self._grpc is not None:
                return async_streams.grpc_stream(self._grpc, request, self.timeout)
            return checked_http_stream()

        stream = async_streams.retrying(self.retry, open_stream)
        self._streams.add(stream)
        return stream

    def _request(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike], stream: bool, **params: Any
    ) -> GenerationRequest:
        models = {"image_model": self.models.llava, "text_model": self.models.decoder}
        return GenerationRequest.of(messages, images, stream, models, **params)

    def generate_stream(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any
    ) -> AsyncIterator[str | Completion]:
        return self._stream(self._request(messages, images, stream=True, **params))

    async def generate(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), **params: Any
    ) -> Completion:
        items = [item async for item in self._stream(self._request(messages, images, stream=False, **params))]
        return items[-1]  # type: ignore[return-value]

    async def caption(self, image: ImageLike, style: str = "descriptive", **params: Any) -> Completion:
        return await self.generate(prompts.caption(style), [image], **params)

    async def captions(
        self, image: ImageLike, n: int = 3, style: str = "descriptive", **params: Any
    ) -> list[Completion]:
        seed = params.pop("seed", 0)
        return list(
            await asyncio.gather(
                *(
                    self.generate(prompts.caption(style), [image], temperature=t, seed=seed + k, **params)
                    for k, t in enumerate(prompts.caption_temperatures(n))
                )
            )
        )

    async def ask(self, image: ImageLike, question: str, **params: Any) -> Completion:
        return await self.generate(prompts.question(question), [image], **params)

    async def batch_ask(
        self, pairs: Sequence[QuestionPair], concurrency: int = 4, progress: bool = True, **params: Any
    ) -> list[Completion]:
        if concurrency < 1:
            raise InvalidInputError(f"concurrency: must be at least 1, got {concurrency}")
        slots = asyncio.Semaphore(concurrency)
        with tqdm(total=len(pairs), disable=not progress, unit="question") as bar:

            async def one(image: ImageLike, question: str) -> Completion:
                async with slots:
                    completion = await self.ask(image, question, **params)
                bar.update()
                return completion

            return list(await asyncio.gather(*(one(image, question) for image, question in pairs)))

    def chat(
        self, messages: list[dict[str, Any]], images: Sequence[ImageLike] = (), stream: bool = True, **params: Any
    ) -> AsyncIterator[str | Completion]:
        return self._stream(self._request(messages, images, stream=stream, **params))

    async def analyze_document(
        self, image: ImageLike, kind: str | None = "summary", query: str | None = None, **params: Any
    ) -> Completion:
        if kind in prompts.DOCUMENT_FORMATS and not query:
            params.setdefault("response_format", prompts.DOCUMENT_FORMATS[kind])
        return await self.generate(prompts.document(None if query else kind, query), [image], **params)

    async def extract_structured(
        self, image: ImageLike, schema: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        params["response_format"] = prompts.json_format(schema)
        return prompts.parse_structured((await self.generate(prompts.structured(), [image], **params)).text)
