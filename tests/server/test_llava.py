"""LLaVA served end to end on tiny-llava: greedy generation equals Hugging Face ``generate`` token for token
while many requests share the decoder's batch; streaming, seeds, cancellation and the encoder caches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from client import Completion, VLMClient
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.reference import LlavaReference
from tests.server.family_servers import TEST_TIMEOUT_S, Exported, FamilyExport
from tests.server.statistics import (
    cache_hits,
    finished_requests,
    metric_total,
    steps_by_batch_size,
    wait_for_idle_decoder,
    wait_until,
)

# The fused variant of tiny-llava, exported as `vlm-export model --fuse-projector` under a name of its own, served by a
# family server (tests/server/family_servers.py) beside another module's checkpoint; the other tests use the session's.
FUSED = "llava-fused"
EXPORT = FamilyExport("llava_fused", "tiny_llava", arguments=("--fuse-projector", "--name", FUSED))
pytestmark = EXPORT.mark


def user(text: str, images: int = 0) -> list[dict]:
    return [{"role": "user", "content": [*([{"type": "image"}] * images), {"type": "text", "text": text}]}]


def test_greedy_generation_equals_hf_generate_with_many_requests_in_flight(
    server: TritonServer, url: str, protocol: str, llava_reference: LlavaReference
) -> None:
    cases = [
        (user("describe the image.", 1), [scene(seed=21)], 24),
        (user("what colour is the circle?", 1), [scene(96, 64, seed=22)], 16),
        (user("what is above the square?", 1), [scene(seed=23)], 30),
        (user("compare the two images.", 2), [scene(seed=24), scene(seed=25)], 20),
        (user("which one has more shapes?", 2), [scene(seed=26), scene(70, 90, seed=27)], 12),
        (user("how many shapes are there?"), [], 28),
        (user("name a colour."), [], 9),
        ([*user("what is it?", 1), {"role": "assistant", "content": "a star."}, *user("what colour?")], [scene()], 18),
        (user("a red square above a blue circle"), [], 32),
    ]
    steps_before = steps_by_batch_size(server)

    def generate(case: tuple[list[dict], list, int]) -> Completion:
        messages, images, max_tokens = case
        with VLMClient(url, protocol=protocol) as client:
            return client.generate(messages, [encode(image) for image in images], max_tokens=max_tokens)

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        completions = list(pool.map(generate, cases))
    for completion, (messages, images, max_tokens) in zip(completions, cases, strict=True):
        assert completion.token_ids == llava_reference.greedy(messages, images, max_tokens)
        prompt_ids = llava_reference.inputs(messages, images)["input_ids"][0].tolist()
        expected_text = llava_reference.text(completion.token_ids, prompt_ids)
        if "\ufffd" not in expected_text + completion.text:  # random weights can emit bytes that are not UTF-8
            assert completion.text == expected_text
        assert completion.completion_tokens == len(completion.token_ids)
        assert completion.prompt_tokens == llava_reference.inputs(messages, images)["input_ids"].shape[1]
        assert completion.finish_reason in ("stop", "length")
        assert len(completion.logprobs) == len(completion.tokens) == completion.completion_tokens
        assert "".join(completion.tokens) == completion.text
        assert 0.0 < completion.confidence <= 1.0
    steps_after = steps_by_batch_size(server)
    batched = sum(count - steps_before.get(size, 0) for size, count in steps_after.items() if size > 1)
    assert batched > 0, "no decode step ran more than one sequence"


def test_streamed_pieces_concatenate_to_the_unstreamed_text_and_a_seed_repeats(url: str, protocol: str) -> None:
    sampling = {"temperature": 0.9, "top_p": 0.95, "top_k": 40, "seed": 77, "max_tokens": 30}
    messages, image = user("describe the image.", 1), encode(scene(seed=30))
    with VLMClient(url, protocol=protocol) as client:
        whole = client.generate(messages, [image], **sampling)  # one response, the server does not stream
        items = list(client.generate_stream(messages, [image], **sampling))
    pieces, final = items[:-1], items[-1]
    assert isinstance(final, Completion) and all(isinstance(piece, str) for piece in pieces)
    assert "".join(pieces) == whole.text  # type: ignore[arg-type]
    assert final.token_ids == whole.token_ids


def test_a_stop_string_ends_the_served_completion_just_before_it(url: str, protocol: str) -> None:
    with VLMClient(url, protocol=protocol) as client:
        free = client.generate(user("how many shapes are there?"), max_tokens=40)
        stop = free.text[len(free.text) // 2 :][:3]
        stopped = client.generate(user("how many shapes are there?"), max_tokens=40, stop=[stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]


@pytest.mark.parametrize("images", [1, 0], ids=["ensemble", "text-only"])
def test_a_cancelled_stream_frees_its_slot_and_the_next_request_is_served(
    server: TritonServer, url: str, protocol: str, images: int
) -> None:
    messages, pictures = user("describe the image.", images), [scene(seed=31)] * images
    length = 1800  # ignore_eos: the stream runs this long unless the cancellation stops it (seconds on tiny-llava)
    cancelled_before = finished_requests(server, "cancelled")
    tokens_before = metric_total(server, "vlm_decoder_generated_tokens_total")
    with VLMClient(url, protocol=protocol) as client:
        stream = client.generate_stream(messages, [encode(p) for p in pictures], max_tokens=length, ignore_eos=True)
        assert isinstance(next(stream), str)
        stream.close()  # leaving the iteration cancels the request on the server
        # Were the cancellation missed, the sequence would end by length and never count as cancelled.
        wait_until(lambda: finished_requests(server, "cancelled") == cancelled_before + 1, "the engine cancels it")
        assert metric_total(server, "vlm_decoder_generated_tokens_total") - tokens_before < length
        wait_for_idle_decoder(server)
        assert client.generate(user("hi"), max_tokens=4).completion_tokens >= 1


def test_a_repeated_image_is_not_re_encoded(server: TritonServer) -> None:
    image = encode(scene(seed=32))
    with VLMClient(server.grpc_url) as client:
        client.generate(user("describe the image.", 1), [image], max_tokens=2)
        hits_before = {model: cache_hits(server, model) for model in ("llava_vision", "llava_projector")}
        client.generate(user("what colour is it?", 1), [image], max_tokens=2)
    for model, hits in hits_before.items():
        assert cache_hits(server, model) == hits + 1, model


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_the_fused_projector_variant_serves_the_same_tokens(
    export_output: Exported, family_server: TritonServer, llava_reference: LlavaReference
) -> None:
    repository, printed = export_output  # vlm-export exits 0 only when every parity check passed
    verdicts = [line.split()[0] for line in printed.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert verdicts and set(verdicts) == {"PASS"}, printed
    assert (repository / f"{FUSED}_vision").is_dir() and not (repository / f"{FUSED}_projector").exists()
    messages, images = user("describe the image.", 2), [scene(seed=40), scene(seed=41)]
    with VLMClient(family_server.grpc_url, chat_model=FUSED) as client:
        completion = client.generate(messages, [encode(image) for image in images], max_tokens=20)
    assert completion.token_ids == llava_reference.greedy(messages, images, 20)
