"""Embeddings through the dual encoder a request names (CLIP, SigLIP, ... by its served name): the texts of a request in
one call to the text tower, its images in one call to the vision tower, concurrently; answered in input order as
floats or base64 (little-endian float32, what the OpenAI SDK decodes). Usage counts the tokens each text was read as;
images count 0."""

from __future__ import annotations

import asyncio
import base64

import numpy as np

from client import AsyncVLMClient, VLMError
from client.embeddings import TextEmbeddings
from gateway.errors import FieldNames, from_vlm_error, invalid
from gateway.images import ImageLoader
from gateway.schemas.common import ImageUrlItem
from gateway.schemas.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gateway.settings import GatewaySettings

NO_TEXTS = TextEmbeddings(np.empty((0, 0), dtype=np.float32), [])


class EmbeddingService:
    def __init__(self, images: ImageLoader, settings: GatewaySettings) -> None:
        self.images = images
        self.settings = settings
        self._dimensions: dict[str, int] = {}  # Triton text model -> its embedding size

    async def dimension(self, vlm: AsyncVLMClient) -> int:
        """The model's embedding size, measured once on a probe text (the generated configs leave it -1)."""
        model = vlm.models.text_embed
        if model not in self._dimensions:
            self._dimensions[model] = int((await vlm.embed_texts(["dimension probe"])).shape[1])
        return self._dimensions[model]

    async def embed(self, request: EmbeddingRequest, vlm: AsyncVLMClient, model: str) -> EmbeddingResponse:
        """``vlm`` calls the dual encoder served as ``model`` (``GatewayState.route``)."""
        items = request.items
        texts = [(i, item) for i, item in enumerate(items) if isinstance(item, str)]
        images = [(i, item) for i, item in enumerate(items) if isinstance(item, ImageUrlItem)]
        if len(items) > self.settings.max_embedding_inputs:
            limit = self.settings.max_embedding_inputs
            raise invalid("input", f"at most {limit} inputs per request, got {len(items)}", "too_many_inputs")
        if len(images) > self.settings.max_images:
            limit = self.settings.max_images
            raise invalid("input", f"at most {limit} images per request, got {len(images)}", "too_many_images")
        try:
            if request.dimensions is not None and request.dimensions != (dimension := await self.dimension(vlm)):
                raise invalid("dimensions", f"this model's embeddings have {dimension} dimensions only")
            blobs = await asyncio.gather(*(self.images.load(item.image_url.url, _image_param(i)) for i, item in images))
            text_result, image_vectors = await asyncio.gather(
                _texts(vlm, [text for _, text in texts]), _images(vlm, list(blobs))
            )
        except VLMError as error:
            raise from_vlm_error(error, self.settings.retry_after_s, _fields(texts, images)) from None
        vectors = dict(zip([i for i, _ in texts], text_result.embeddings, strict=True))
        vectors.update(zip([i for i, _ in images], image_vectors, strict=True))
        tokens = sum(text_result.token_counts)
        return EmbeddingResponse(
            data=[
                Embedding(index=i, embedding=_encode(vectors[i], request.encoding_format)) for i in range(len(items))
            ],
            model=model,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )


async def _texts(vlm: AsyncVLMClient, texts: list[str]) -> TextEmbeddings:
    return await vlm.text_embeddings(texts) if texts else NO_TEXTS


async def _images(vlm: AsyncVLMClient, blobs: list[bytes]) -> np.ndarray:
    return await vlm.embed_images(blobs) if blobs else np.empty((0, 0), dtype=np.float32)


def _image_param(index: int) -> str:
    return f"input[{index}].image_url.url"


def _fields(texts: list[tuple[int, str]], images: list[tuple[int, ImageUrlItem]]) -> FieldNames:
    """Triton's ``text[k]`` / ``image[k]`` -> the position in ``input`` they came from."""

    def name(field: str, index: int | None) -> str | None:
        positions = {"text": [i for i, _ in texts], "image": [i for i, _ in images]}.get(field)
        if positions is None or index is None or index >= len(positions):
            return "input"
        return _image_param(positions[index]) if field == "image" else f"input[{positions[index]}]"

    return name


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return [float(x) for x in vector]
