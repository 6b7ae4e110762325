"""A sync stream left early is cancelled on the server: by ``break`` and by the client's context manager
closing. (``tests/server/test_llava.py`` covers closing the generator itself.)"""

from __future__ import annotations

from client import VLMClient, prompts
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.statistics import (
    finished_requests,
    metric_total,
    wait_for_idle_decoder,
    wait_until,
)

LONG = 1800  # with ignore_eos, a stream of seconds on tiny-llava


def test_breaking_out_of_a_stream_cancels_it_on_the_server(server: TritonServer, url: str, protocol: str) -> None:
    cancelled_before = finished_requests(server, "cancelled")
    with VLMClient(url, protocol=protocol) as client:
        for piece in client.chat(
            prompts.user_turn("describe the image."), [encode(scene(seed=31))], max_tokens=LONG, ignore_eos=True
        ):
            assert isinstance(piece, str)
            break
        wait_until(lambda: finished_requests(server, "cancelled") == cancelled_before + 1, "the engine cancels it")
    wait_for_idle_decoder(server)
    assert metric_total(server, "vlm_decoder_active_sequences") == 0


def test_closing_the_client_cancels_its_open_streams(server: TritonServer, url: str, protocol: str) -> None:
    cancelled_before = finished_requests(server, "cancelled")
    with VLMClient(url, protocol=protocol) as client:
        streams = [
            client.chat(prompts.user_turn("describe the image.", 0), max_tokens=LONG, ignore_eos=True) for _ in range(2)
        ]
        assert all(isinstance(next(stream), str) for stream in streams)
    wait_until(lambda: finished_requests(server, "cancelled") == cancelled_before + 2, "the engine cancels both")
    wait_for_idle_decoder(server)
