"""Triton 2.51 loses an ensemble request whose two parallel steps fail at about the same time, and every later
gRPC unary inference of the server hangs. clip_rank's image step therefore waits for its tokenizer
(export/families/clip/spec.py); this drives the case that hung (a bad image with a bad text) hard enough to show it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from serving.launcher import TritonServer
from tests.server.test_bad_input import assert_server_still_serving

REQUESTS = 800  # the hang came about once in 100 to 300 such requests


def rank_with_bad_image_and_bad_text(url: str, index: int) -> str:
    client = grpcclient.InferenceServerClient(url)
    image = grpcclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([b"not an image %d" % index], dtype=object))
    text = grpcclient.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b""], dtype=object))
    try:
        client.infer("clip_rank", [image, text], client_timeout=20)
    except InferenceServerException as error:
        return str(error.status())
    return "answered"


def test_a_rank_request_whose_image_and_text_are_both_bad_never_wedges_the_server(server: TritonServer) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: rank_with_bad_image_and_bad_text(server.grpc_url, i), range(REQUESTS)))
    assert set(statuses) == {"StatusCode.INVALID_ARGUMENT"}, {s: statuses.count(s) for s in set(statuses)}
    assert_server_still_serving(server)
