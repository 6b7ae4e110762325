"""The playground page in headless Chromium against the session's gateway: an uploaded image and a question
stream back the answer ``VLMClient.ask`` gives for the same image and question (tiny-llava, greedy). The same on
shapes-llava with the world's expected answer is in test_shapes_llava.py (``make test-long``: it trains)."""

from __future__ import annotations

from pathlib import Path

from client import VLMClient
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from tests.gateway.browser import chromium_page
from tests.gateway.conftest import API_KEY
from tests.images import encode, scene


def test_the_playground_streams_the_answer_vlm_client_gets_in_chromium(
    gateway: GatewayProcess, server: TritonServer, tmp_path: Path
) -> None:
    image, question = scene(seed=91), "what colour is the circle?"
    picture = tmp_path / "scene.png"
    picture.write_bytes(encode(image))
    with VLMClient(server.grpc_url) as client:
        expected = client.ask(picture.read_bytes(), question).text
    assert expected  # the page must show something to compare
    with chromium_page() as page:
        page.goto(f"{gateway.url}/")
        page.fill("#api-key", API_KEY)
        page.set_input_files("#image", str(picture))
        page.select_option("#task", "ask")
        page.fill("#prompt", question)
        page.click("#run")
        finished = "['done', 'error'].includes(document.getElementById('answer').dataset.state)"
        page.wait_for_function(finished, timeout=120_000)
        assert page.get_attribute("#answer", "data-state") == "done", page.text_content("#answer")
        assert page.text_content("#answer") == expected
        assert page.inner_text("#status").startswith("done in")
