"""Bad input gets a clear error naming the field and the limit; the server stays up and serves the next request."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from client import InvalidInputError, VLMClient
from serving.launcher import TritonServer
from tests.images import DEFINED_CASES, decompression_bomb, encode, scene, truncated_jpeg
from tests.reference import ClipReference, min_row_cosine
from tests.server.statistics import batch_counts, batched_executions

LEAKS = re.compile(r"Traceback|File \"|/[a-z_]+/|0x[0-9a-f]{6,}|<[a-zA-Z_.]+ object")


def assert_clean(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not LEAKS.search(message), f"message leaks internals: {message!r}"


def assert_still_serving(client: VLMClient) -> None:
    assert client.embed_texts(["still alive"]).shape[0] == 1
    assert client.embed_images([encode(scene(seed=99))]).shape[0] == 1


def assert_server_still_serving(server: TritonServer) -> None:
    with VLMClient(server.grpc_url) as client:
        assert_still_serving(client)


# A request's second image, and the fragments its error names (every family's preprocess step answers these).
UNDECODABLE_IMAGES = pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        (b"definitely not an image", ["image[1]", "not a decodable image"]),
        (b"", ["image[1]", "empty"]),
        (truncated_jpeg(), ["image[1]", "truncated or corrupt"]),
        (decompression_bomb(), ["image[1]", "8000x8000", "limit is 36000000"]),
    ],
    ids=["not-an-image", "empty-bytes", "truncated-jpeg", "decompression-bomb"],
)


@UNDECODABLE_IMAGES
def test_undecodable_images_are_rejected_clearly(url: str, protocol: str, payload: bytes, fragments: list[str]) -> None:
    with VLMClient(url, protocol=protocol) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.embed_images([encode(scene()), payload])
        assert_clean(str(caught.value), *fragments)
        assert_still_serving(client)


@pytest.mark.parametrize("case", sorted(DEFINED_CASES))
def test_unusual_images_have_a_defined_result(server: TritonServer, reference: ClipReference, case: str) -> None:
    payload, expected_rgb = DEFINED_CASES[case]()
    with VLMClient(server.grpc_url) as client:
        served = client.embed_images([payload])
    assert min_row_cosine(served, reference.image_embeds([expected_rgb])) >= 0.9999


def test_too_many_images_name_the_limit(server: TritonServer) -> None:
    with VLMClient(server.grpc_url) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.embed_images([encode(scene(seed=1))] * 33)
        assert_clean(str(caught.value), "image", "at most 32")
        assert_still_serving(client)


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        (b"", ["text[0]", "empty"]),
        (b"   ", ["text[0]", "empty"]),
        (b"caf\xe9 au lait", ["text[0]", "not valid UTF-8", "offset 3"]),
        (b"a" * 20_000, ["text[0]", "limit is 16384"]),
    ],
    ids=["empty", "whitespace", "invalid-utf8", "over-byte-limit"],
)
def test_bad_texts_are_rejected_clearly(url: str, protocol: str, payload: bytes, fragments: list[str]) -> None:
    module = grpcclient if protocol == "grpc" else httpclient
    raw = module.InferenceServerClient(url)
    text = module.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([payload], dtype=object))
    with pytest.raises(InferenceServerException) as caught:
        raw.infer("clip_text_embed", [text])
    assert str(caught.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    assert_clean(caught.value.message(), *fragments)
    with VLMClient(url, protocol=protocol) as client:
        assert_still_serving(client)


def grpc_inputs(datatype: str, **arrays: np.ndarray) -> list[grpcclient.InferInput]:
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_wrong_dtype_sent_straight_to_clip_vision_is_rejected(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_vision", grpc_inputs("INT64", pixel_values=np.zeros((1, 3, 64, 64), np.int64)))
    assert_clean(caught.value.message(), "pixel_values", "FP32")
    assert_server_still_serving(server)


@pytest.mark.parametrize(
    ("shape", "fragments"),
    [((1, 3, 10, 10), ["pixel_values", "[-1, 3, 64, 64]", "[1, 3, 10, 10]"]), ((2, 3, 64), ["pixel_values"])],
    ids=["wrong-size", "wrong-rank"],
)
def test_wrong_shape_sent_straight_to_clip_vision_is_rejected(
    server: TritonServer, shape: tuple[int, ...], fragments: list[str]
) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_vision", grpc_inputs("FP32", pixel_values=np.zeros(shape, np.float32)))
    assert_clean(caught.value.message(), *fragments)
    assert_server_still_serving(server)


def test_nan_pixels_are_rejected(server: TritonServer) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    pixels = np.full((1, 3, 64, 64), np.nan, np.float32)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_vision", grpc_inputs("FP32", pixel_values=pixels))
    assert_clean(caught.value.message(), "pixel_values", "finite")
    assert_server_still_serving(server)


def test_a_bad_request_batched_with_good_ones_fails_alone(server: TritonServer) -> None:
    good = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    bad = np.full((1, 3, 64, 64), np.inf, np.float32)
    payloads = [good, bad] * 8
    # Clients made beforehand and a barrier: the requests arrive together. clip_vision dispatches at once when idle
    # (preferred batch size 1), so it batches only what queues behind a running execution, and on a quiet host a
    # round can run every request alone: rounds go on (3 at least) until one was batched.
    clients = [grpcclient.InferenceServerClient(server.grpc_url) for _ in payloads]
    start = threading.Barrier(len(payloads))

    def call(client: grpcclient.InferenceServerClient, array: np.ndarray) -> str:
        start.wait(timeout=30)
        try:
            client.infer("clip_vision", grpc_inputs("FP32", pixel_values=array))
        except InferenceServerException:
            return "error"
        return "ok"

    batches_before = batch_counts(server, "clip_vision")
    batched = 0
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        for round_number in range(20):  # repeated: a cached batch-mate's result must never answer the bad input
            outcomes = list(pool.map(call, clients, payloads))
            assert outcomes == ["ok", "error"] * 8
            batched = batched_executions(batches_before, batch_counts(server, "clip_vision"))
            if round_number >= 2 and batched:
                break
    assert batched > 0


def test_bad_images_mixed_with_good_ones_fail_alone_through_the_cached_ensemble(server: TritonServer) -> None:
    payloads = [encode(scene(seed=40)), b"not an image"] * 8

    def call(payload: bytes) -> str:
        with VLMClient(server.grpc_url) as client:
            try:
                client.embed_images([payload])
            except InvalidInputError:
                return "error"
        return "ok"

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
            outcomes = list(pool.map(call, payloads))
        assert outcomes == ["ok", "error"] * 8


@pytest.mark.parametrize(
    ("ids", "mask", "fragments"),
    [
        (99_999, 1, ["input_ids", "[0, 1023]", "99999"]),
        (-5, 1, ["input_ids", "[0, 1023]", "-5"]),
        (5, 7, ["attention_mask", "[0, 1]"]),
    ],
    ids=["token-id-over-vocabulary", "negative-token-id", "mask-not-binary"],
)
def test_out_of_range_tokens_sent_straight_to_clip_text_are_rejected(
    server: TritonServer, ids: int, mask: int, fragments: list[str]
) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    request = grpc_inputs(
        "INT64", input_ids=np.full((1, 77), ids, np.int64), attention_mask=np.full((1, 77), mask, np.int64)
    )
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_text", request)
    assert str(caught.value.status()) == "StatusCode.INVALID_ARGUMENT"
    assert_clean(caught.value.message(), *fragments)
    assert_server_still_serving(server)


@pytest.mark.parametrize(
    ("ids_length", "mask_length", "fragments"),
    [
        (78, 78, ["input_ids", "sequence must be 1 to 77 long", "got 78"]),
        (5, 6, ["attention_mask", "sequence is 6 long", "input_ids's is 5"]),
    ],
    ids=["longer-than-the-context", "lengths-differ"],
)
def test_token_arrays_of_a_wrong_length_sent_straight_to_clip_text_are_rejected(
    server: TritonServer, ids_length: int, mask_length: int, fragments: list[str]
) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    request = grpc_inputs(
        "INT64", input_ids=np.full((1, ids_length), 5, np.int64), attention_mask=np.ones((1, mask_length), np.int64)
    )
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_text", request)
    assert str(caught.value.status()) == "StatusCode.INVALID_ARGUMENT"
    assert_clean(caught.value.message(), *fragments)
    assert_server_still_serving(server)


def test_too_many_pixels_in_one_request_are_refused_before_decoding(server: TritonServer) -> None:
    at_the_cap = encode(Image.new("L", (6000, 6000), 0))  # 36 MP each: allowed alone, not four at once
    with VLMClient(server.grpc_url) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.embed_images([at_the_cap] * 4)
        assert_clean(str(caught.value), "image", "144000000 pixels", "limit is 128000000")
        assert_still_serving(client)


@pytest.mark.parametrize(
    ("images", "texts", "fragments"),
    [
        (np.ones((1, 32), np.float32), np.ones((0, 32), np.float32), ["text_embeds", "at least one"]),
        (np.full((1, 32), np.nan, np.float32), np.ones((2, 32), np.float32), ["image_embeds", "finite"]),
        (np.ones((33, 32), np.float32), np.ones((2, 32), np.float32), ["image_embeds", "at most 32"]),
        (np.ones((1, 32), np.float32), np.ones((2, 16), np.float32), ["text_embeds", "16", "32"]),
    ],
    ids=["no-texts", "nan", "too-many-images", "size-mismatch"],
)
def test_bad_embeddings_sent_straight_to_clip_similarity_are_rejected(
    server: TritonServer, images: np.ndarray, texts: np.ndarray, fragments: list[str]
) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("clip_similarity", grpc_inputs("FP32", image_embeds=images, text_embeds=texts))
    assert str(caught.value.status()) == "StatusCode.INVALID_ARGUMENT"
    assert_clean(caught.value.message(), *fragments)
    assert_server_still_serving(server)
