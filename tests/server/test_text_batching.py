"""Texts are padded to a request's longest and ``clip_text`` pads requests of different lengths to one batch:
short and long texts batched together embed exactly as each does alone, at every length up to the context."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from client import VLMClient
from serving.launcher import TritonServer
from serving.text_tokenizer import TextTokenizer
from tests.reference import ClipReference, min_row_cosine
from tests.server.statistics import batch_counts, batched_executions

WORDS = ("red", "circle", "above", "a", "tiny", "blue", "star", "near", "green", "square")


def texts_of_lengths(tokenizer: TextTokenizer, lengths: list[int], seed: int) -> list[str]:
    """One random text per wanted token count (start and end tokens included)."""
    rng = np.random.default_rng(seed)

    def tokens(words: list[str]) -> int:
        return int(tokenizer.encode([" ".join(words)])["attention_mask"].sum())

    texts = []
    for length in lengths:
        words: list[str] = []
        while tokens(words) < length:
            candidate = [*words, str(rng.choice(WORDS))]
            if tokens(candidate) <= length:  # a word of several tokens may overshoot: draw another
                words = candidate
        texts.append(" ".join(words))
    return texts


def served_alone(server: TritonServer, tokenizer: TextTokenizer, texts: list[str]) -> np.ndarray:
    """Each text's embedding from ``clip_text`` (no response cache), one request and one execution per text."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    rows = []
    for text in texts:
        inputs = []
        for name, array in tokenizer.encode([text]).items():
            tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        rows.append(client.infer("clip_text", inputs).as_numpy("text_embeds")[0])
    return np.stack(rows)


def test_short_and_long_texts_in_one_request_embed_as_each_alone(
    server: TritonServer, model_repository: Path, reference: ClipReference
) -> None:
    tokenizer = TextTokenizer(model_repository / "clip_tokenize" / "1" / "tokenizer")
    texts = [*texts_of_lengths(tokenizer, [3, 77, 9, 40], seed=1), "and a long one " * 40]  # the last: truncated
    with VLMClient(server.grpc_url) as client:
        together = client.embed_texts(texts)
    np.testing.assert_allclose(together, served_alone(server, tokenizer, texts), atol=1e-5)
    assert min_row_cosine(together, reference.text_embeds_each_alone(texts)) >= 0.9999


def test_requests_of_different_lengths_merged_by_the_dynamic_batcher_embed_as_each_alone(
    server: TritonServer, model_repository: Path, reference: ClipReference
) -> None:
    tokenizer = TextTokenizer(model_repository / "clip_tokenize" / "1" / "tokenizer")
    lengths = list(range(4, 77, 3))  # 25 requests, no two of one length: any merged batch mixes lengths
    merged = 0
    for attempt in range(5):  # until Triton reports that the batcher merged some of them
        texts = texts_of_lengths(tokenizer, lengths, seed=10 + attempt)
        start = threading.Barrier(len(texts))
        before = batch_counts(server, "clip_text")

        def embed(text: str, start: threading.Barrier = start) -> np.ndarray:
            with VLMClient(server.grpc_url) as client:
                start.wait()
                return client.embed_texts([text])[0]

        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            batched = np.stack(list(pool.map(embed, texts)))
        merged = batched_executions(before, batch_counts(server, "clip_text"))
        np.testing.assert_allclose(batched, served_alone(server, tokenizer, texts), atol=1e-5)
        assert min_row_cosine(batched, reference.text_embeds_each_alone(texts)) >= 0.9999
        if merged:
            break
    assert merged > 0, "the dynamic batcher never merged requests of different lengths"


def test_texts_of_every_length_up_to_the_context_embed_as_hugging_face(
    server: TritonServer, model_repository: Path, reference: ClipReference
) -> None:
    tokenizer = TextTokenizer(model_repository / "clip_tokenize" / "1" / "tokenizer")
    texts = texts_of_lengths(tokenizer, list(range(3, 78)), seed=2)
    with VLMClient(server.grpc_url) as client:
        served = np.concatenate([client.embed_texts(texts[:38]), client.embed_texts(texts[38:])])
    assert min_row_cosine(served, reference.text_embeds_each_alone(texts)) >= 0.9999
