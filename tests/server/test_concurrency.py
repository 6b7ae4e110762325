"""Concurrent requests are all answered correctly, and the dynamic batcher merges them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from client import VLMClient
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.reference import ClipReference, min_row_cosine
from tests.server.statistics import batch_counts, batched_executions

REQUESTS = 32


def test_32_concurrent_requests_are_all_correct_and_batched(server: TritonServer, reference: ClipReference) -> None:
    images = [scene(64 + i, 64, seed=100 + i) for i in range(REQUESTS)]  # distinct: no cache hits
    texts = [f"a photo of {i} small squares" for i in range(REQUESTS)]
    vision_before, text_before = batch_counts(server, "clip_vision"), batch_counts(server, "clip_text")

    def embed_pair(index: int) -> tuple[np.ndarray, np.ndarray]:
        with VLMClient(server.grpc_url, protocol="grpc") as client:
            return client.embed_images([encode(images[index])])[0], client.embed_texts([texts[index]])[0]

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        results = list(pool.map(embed_pair, range(REQUESTS)))

    served_images = np.stack([r[0] for r in results])
    served_texts = np.stack([r[1] for r in results])
    assert min_row_cosine(served_images, reference.image_embeds(images)) >= 0.9999
    assert min_row_cosine(served_texts, reference.text_embeds(texts)) >= 0.9999
    assert batched_executions(vision_before, batch_counts(server, "clip_vision")) > 0
    assert batched_executions(text_before, batch_counts(server, "clip_text")) > 0
