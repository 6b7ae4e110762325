"""The original design's REST routes, multipart uploads through the real gateway on the tiny checkpoints: each
answers what the same task through ``VLMClient`` answers, in the seed's response shape."""

from __future__ import annotations

import httpx
import pytest

from client import VLMClient, prompts
from serving.launcher import TritonServer
from tests.gateway.conftest import data_url
from tests.images import encode, scene

IMAGE = encode(scene(seed=80))
SHORT = {"max_tokens": "6"}


def upload(http: httpx.Client, path: str, image: bytes = IMAGE, **fields: str) -> httpx.Response:
    return http.post(path, files={"file": ("scene.png", image, "image/png")}, data=fields)


@pytest.mark.parametrize(
    ("fields", "ask"),
    [
        ({"task": "vqa", "query": "what colour is it?"}, lambda c: c.ask(IMAGE, "what colour is it?", max_tokens=6)),
        ({"query": "how many?"}, lambda c: c.ask(IMAGE, "how many?", max_tokens=6)),
        ({"task": "caption"}, lambda c: c.caption(IMAGE, "descriptive", max_tokens=6)),
        ({"task": "describe"}, lambda c: c.caption(IMAGE, "technical", max_tokens=6)),
    ],
)
def test_analyze_image_answers_as_the_client_does(http: httpx.Client, server: TritonServer, fields: dict, ask) -> None:
    reply = upload(http, "/analyze-image", **fields, **SHORT)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    with VLMClient(server.grpc_url) as direct:
        expected = ask(direct)
    assert set(body) == {"task", "query", "result", "confidence"}
    assert body["task"] == fields.get("task", "vqa") and body["query"] == fields.get("query")
    assert body["result"] == expected.text.strip()
    assert body["confidence"] == pytest.approx(expected.confidence, rel=1e-5)


def test_document_analysis_takes_a_kind_or_a_question(http: httpx.Client, server: TritonServer) -> None:
    with VLMClient(server.grpc_url) as direct:
        for kind in (*prompts.DOCUMENT_KINDS, "What is the total?"):
            reply = upload(http, "/document-analysis", analysis_type=kind, **SHORT)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert set(body) == {"analysis_type", "extracted_info", "processing_time"}
            expected = (
                direct.analyze_document(IMAGE, kind, max_tokens=6)
                if kind in prompts.DOCUMENT_KINDS
                else direct.analyze_document(IMAGE, None, query=kind, max_tokens=6)
            )
            assert body["analysis_type"] == kind and body["extracted_info"] == expected.text.strip()
            assert 0 < body["processing_time"] < 60


def test_classify_gives_clips_zero_shot_probabilities_from_a_file_or_a_url(
    http: httpx.Client, server: TritonServer
) -> None:
    labels = ["red circle", "blue square", "green star"]
    with VLMClient(server.grpc_url) as direct:
        expected = direct.classify(IMAGE, labels)
    by_file = upload(http, "/v1/classify", labels="red circle, blue square,green star")
    by_url = http.post("/v1/classify", data={"image_url": data_url(IMAGE), "labels": labels})
    for reply in (by_file, by_url):
        assert reply.status_code == 200, reply.text
        predictions = reply.json()["predictions"]
        assert [p["label"] for p in predictions] == list(expected)
        assert [p["probability"] for p in predictions] == pytest.approx(list(expected.values()), abs=1e-6)
        assert reply.json()["model"] == "clip"


@pytest.mark.parametrize(
    ("path", "fields", "files", "param"),
    [
        ("/analyze-image", {"task": "vqa"}, True, "query"),
        ("/analyze-image", {"task": "caption", "query": "why?"}, True, "query"),
        ("/analyze-image", {"task": "poem"}, True, "task"),
        ("/analyze-image", {"query": "what?", "temperature": "2"}, True, "temperature"),
        ("/analyze-image", {"query": "what?"}, False, "file"),
        ("/analyze-image", {"query": "what?", "max_tokens": "0"}, True, "max_tokens"),
        ("/document-analysis", {"analysis_type": " "}, True, "analysis_type"),
        ("/v1/classify", {"labels": "a,,b"}, True, "labels"),
        ("/v1/classify", {"labels": "a", "template": "{0.__class__}"}, True, "template"),
        ("/v1/classify", {"labels": "a"}, False, "file"),
    ],
)
def test_bad_uploads_are_400s_naming_the_field(
    http: httpx.Client, path: str, fields: dict, files: bool, param: str
) -> None:
    reply = upload(http, path, **fields) if files else http.post(path, data=fields)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
