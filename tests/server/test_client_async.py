"""``AsyncVLMClient`` against the real server over both protocols: the same answers as ``VLMClient``, async
streams, concurrent batches in input order, and a stream left early cancelled on the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from client import AsyncVLMClient, Completion, VLMClient, prompts
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.statistics import finished_requests, metric_total, wait_for_idle_decoder

GREEDY = {"max_tokens": 8}


def test_the_clip_tasks_answer_as_the_sync_client_does(url: str, protocol: str, tmp_path: Path) -> None:
    images = [encode(scene(seed=s)) for s in (100, 101, 102)]
    for k, image in enumerate(images):
        (tmp_path / f"{k}.png").write_bytes(image)

    async def run() -> tuple:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            return (
                await client.embed_images(images),
                await client.classify(images[0], ["cat", "dog"]),
                await client.rank(text="a green square", images=images),
                await client.rank(image=images[1], texts=["a", "b", "c"]),
                await client.index_folder(tmp_path),
                await client.search(await client.index_folder(tmp_path), "a green square", k=2),
            )

    vectors, probabilities, by_text, by_image, index, hits = asyncio.run(run())
    with VLMClient(url, protocol=protocol) as client:
        np.testing.assert_allclose(vectors, client.embed_images(images), atol=1e-6)
        assert probabilities.keys() == client.classify(images[0], ["cat", "dog"]).keys()
        assert by_text == client.rank(text="a green square", images=images)
        assert [r.index for r in by_image] == [r.index for r in client.rank(image=images[1], texts=["a", "b", "c"])]
        assert hits == client.search(index, "a green square", k=2)


def test_the_generation_tasks_answer_as_the_sync_client_does(url: str, protocol: str) -> None:
    image, pairs = encode(scene(seed=103)), [(encode(scene(seed=104 + k)), "what?") for k in range(3)]

    async def run() -> tuple:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            return (
                await client.caption(image, "poetic", **GREEDY),
                await client.captions(image, 2, **GREEDY),
                await client.ask(image, "what colour?", **GREEDY),
                await client.batch_ask(pairs, concurrency=2, progress=False, **GREEDY),
                [item async for item in client.chat(prompts.user_turn("hi"), [image], **GREEDY)],
                await client.analyze_document(image, "numbers", **GREEDY),
                await client.extract_structured(image, **GREEDY),
            )

    caption, captions, answer, answers, chat, document, structured = asyncio.run(run())
    with VLMClient(url, protocol=protocol) as client:
        assert caption.token_ids == client.caption(image, "poetic", **GREEDY).token_ids
        assert [c.token_ids for c in captions] == [c.token_ids for c in client.captions(image, 2, **GREEDY)]
        assert answer.token_ids == client.ask(image, "what colour?", **GREEDY).token_ids
        assert [c.token_ids for c in answers] == [client.ask(i, q, **GREEDY).token_ids for i, q in pairs]
        assert document.token_ids == client.analyze_document(image, "numbers", **GREEDY).token_ids
        assert structured == client.extract_structured(image, **GREEDY)
    *pieces, final = chat
    assert isinstance(final, Completion) and "".join(pieces) == final.text and pieces


def test_breaking_out_of_an_async_stream_cancels_it_on_the_server(
    server: TritonServer, url: str, protocol: str
) -> None:
    cancelled_before = finished_requests(server, "cancelled")

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            async for piece in client.generate_stream(
                prompts.user_turn("describe the image."), [encode(scene(seed=31))], max_tokens=1800, ignore_eos=True
            ):
                assert isinstance(piece, str)
                break
            # The loop's finaliser closes the abandoned stream; the server sees the cancel while we wait here.
            while finished_requests(server, "cancelled") == cancelled_before:
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(run(), 30))
    wait_for_idle_decoder(server)
    assert metric_total(server, "vlm_decoder_active_sequences") == 0


def test_closing_the_async_client_cancels_its_open_stream(server: TritonServer, url: str, protocol: str) -> None:
    cancelled_before = finished_requests(server, "cancelled")

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            stream = client.generate_stream(
                prompts.user_turn("describe the image.", 0), max_tokens=1800, ignore_eos=True
            )
            assert isinstance(await anext(stream), str)
        # leaving ``async with`` closed the stream before closing the connection

    asyncio.run(asyncio.wait_for(run(), 30))
    wait_for_idle_decoder(server)
    assert finished_requests(server, "cancelled") == cancelled_before + 1


def test_is_ready_checks_the_server_and_the_named_models(url: str, protocol: str) -> None:
    async def run() -> tuple[bool, bool, bool]:
        async with AsyncVLMClient(url, protocol=protocol) as client:
            served = await client.is_ready(["clip_text_embed", "llava"])
            unknown = await client.is_ready(["no_such_model"])
        async with AsyncVLMClient("127.0.0.1:1", protocol=protocol, timeout=2) as client:
            unreachable = await client.is_ready()
        return served, unknown, unreachable

    assert asyncio.run(run()) == (True, False, False)
