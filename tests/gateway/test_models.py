"""Models by name through the real OpenAI SDK and the real gateway, on the session's repository (tests/conftest.py:
every family under its default name, and a second CLIP as ``NAMED_CLIP``): ``/v1/models`` lists each exported model
by name, read from Triton; each request goes to the model its ``model`` field names, which answers with its own
embeddings (equal to its own Hugging Face reference); an unknown name gets a 404 and a model of the other kind a 400,
each naming it; a request that names no model gets the default one of its kind."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from client import VLMClient
from client.ranking import DEFAULT_TEMPLATE
from serving.launcher import TritonServer
from tests.conftest import NAMED_CLIP
from tests.gateway.conftest import data_url
from tests.images import encode, scene
from tests.reference import ClipReference, SiglipReference, min_row_cosine

TEXTS = ["a red circle", "two blue squares above a star"]


def test_v1_models_lists_each_exported_model_by_name_with_its_kind(sdk: openai.OpenAI, http: httpx.Client) -> None:
    listed = sdk.models.list()
    assert [model.id for model in listed] == ["clip", NAMED_CLIP, "llava", "llava_next", "siglip", "siglip2"]
    assert all(model.object == "model" and model.owned_by == "triton-vlm" for model in listed)
    body = http.get("/v1/models").json()
    assert body["object"] == "list"
    kinds = {card["id"]: (card["kind"], card["family"]) for card in body["data"]}
    assert kinds == {
        "clip": ("embedding", "clip"),
        NAMED_CLIP: ("embedding", "clip"),
        "llava": ("chat", "llava"),
        "llava_next": ("chat", "llava_next"),
        "siglip": ("embedding", "siglip"),
        "siglip2": ("embedding", "siglip2"),
    }
    # Issue 27: each card says what its exported encoders run at, as the repository records it (the session's are fp32).
    precisions = {card["id"]: (card["precision"], card["encoder_precisions"]) for card in body["data"]}
    assert precisions["siglip"] == ("fp32", {"siglip_text": "fp32", "siglip_vision": "fp32"})
    assert precisions["llava_next"] == ("fp32", {"llava_next_projector": "fp32", "llava_next_vision": "fp32"})
    assert all(precision == "fp32" and encoders for precision, encoders in precisions.values()), precisions


def test_each_name_answers_with_its_own_embeddings_texts_and_images(
    sdk: openai.OpenAI, reference: ClipReference, named_clip_reference: ClipReference
) -> None:
    images = [scene(seed=81), scene(60, 90, seed=82)]
    items = [{"type": "image_url", "image_url": {"url": data_url(encode(image))}} for image in images]
    for name, expected, dimension in (("clip", reference, 32), (NAMED_CLIP, named_clip_reference, 24)):
        reply = sdk.embeddings.create(model=name, input=[*TEXTS, *items], encoding_format="float")  # type: ignore[list-item]
        assert reply.model == name and [d.index for d in reply.data] == [0, 1, 2, 3]
        vectors = np.array([d.embedding for d in reply.data], dtype=np.float32)
        assert vectors.shape == (4, dimension)
        assert min_row_cosine(vectors[:2], expected.text_embeds(TEXTS)) >= 0.9999
        assert min_row_cosine(vectors[2:], expected.image_embeds(images)) >= 0.9999
        tokens = sum(len(expected.processor.tokenizer(t, truncation=True)["input_ids"]) for t in TEXTS)
        assert reply.usage.prompt_tokens == tokens
        decoded = sdk.embeddings.create(model=name, input=TEXTS[0])  # base64, decoded by the SDK
        assert len(decoded.data[0].embedding) == dimension


@pytest.mark.parametrize("name", ["siglip", "siglip2"])
def test_siglip_and_siglip2_answer_under_their_names_with_hugging_faces_embeddings_and_sigmoid_scores(
    name: str, sdk: openai.OpenAI, http: httpx.Client, request: pytest.FixtureRequest
) -> None:
    reference: SiglipReference = request.getfixturevalue(f"{name}_reference")
    images = [scene(seed=84), scene(120, 50, seed=85)]  # two aspect ratios: SigLIP2 gives each its own grid
    items = [{"type": "image_url", "image_url": {"url": data_url(encode(image))}} for image in images]
    reply = sdk.embeddings.create(model=name, input=[*TEXTS, *items], encoding_format="float")  # type: ignore[list-item]
    assert reply.model == name
    vectors = np.array([d.embedding for d in reply.data], dtype=np.float32)
    assert min_row_cosine(vectors[:2], reference.text_embeds(TEXTS)) >= 0.9999
    assert min_row_cosine(vectors[2:], reference.image_embeds(images)) >= 0.9999
    labels = ["dog", "square", "circle"]
    form = {"labels": ",".join(labels), "model": name}
    answer = http.post("/v1/classify", data=form, files={"file": ("scene.png", encode(images[0]), "image/png")})
    assert answer.status_code == 200, answer.text
    _, probs = reference.scores(images[:1], [DEFAULT_TEMPLATE.format(label) for label in labels])
    served = {p["label"]: p["probability"] for p in answer.json()["predictions"]}
    assert [served[label] for label in labels] == pytest.approx(probs[0].tolist(), abs=1e-4)  # sigmoid per label


def test_zero_shot_classification_goes_to_the_named_model(http: httpx.Client, server: TritonServer) -> None:
    image = encode(scene(seed=83))
    form = {"labels": "red circle,blue square", "model": NAMED_CLIP}
    reply = http.post("/v1/classify", data=form, files={"file": ("scene.png", image, "image/png")})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == NAMED_CLIP
    with VLMClient(server.grpc_url, embedding_model=NAMED_CLIP) as direct:
        expected = direct.classify(image, ["red circle", "blue square"])
    served = {p["label"]: p["probability"] for p in reply.json()["predictions"]}
    assert served == pytest.approx(expected, abs=1e-5)


def test_an_unknown_name_is_a_404_naming_it_in_openais_error_shape(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.embeddings.create(model="clip-large", input="hi")
    error = raised.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model" and error["type"] == "invalid_request_error"
    assert "'clip-large' does not exist" in error["message"] and NAMED_CLIP in error["message"]
    with pytest.raises(openai.NotFoundError, match="'gpt-4o' does not exist"):
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    reply = http.post("/analyze-image", data={"model": "nope", "task": "caption"}, files={"file": ("a.png", b"x")})
    assert reply.status_code == 404 and "'nope' does not exist" in reply.json()["error"]["message"]


def test_a_model_of_the_other_kind_is_a_400_naming_it(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=NAMED_CLIP, messages=[{"role": "user", "content": "hi"}])
    error = raised.value.body
    assert error["code"] == "model_not_supported" and error["param"] == "model"
    assert f"'{NAMED_CLIP}' is an embedding model: it cannot chat" in error["message"] and "llava" in error["message"]
    with pytest.raises(openai.BadRequestError, match="'llava' is a chat model: it makes no embeddings"):
        sdk.embeddings.create(model="llava", input="hi")
    reply = http.post("/v1/classify", data={"labels": "a,b", "model": "llava"}, files={"file": ("a.png", b"x")})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "model"


def test_a_request_without_a_model_gets_the_default_of_its_kind(http: httpx.Client, server: TritonServer) -> None:
    reply = http.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "float"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "clip"
    with VLMClient(server.grpc_url) as direct:
        expected = direct.embed_texts(TEXTS[:1])
    assert min_row_cosine(np.array([reply.json()["data"][0]["embedding"]]), expected) >= 0.9999
