"""``VLMClient``'s tasks against the real server on the tiny checkpoints, over both protocols. tiny-llava's
words are noise, so the generation tasks are checked for their plumbing: the task's prompt reached the server
(prompt sizes differ between styles, greedy output equals ``generate`` on the same messages) and the counts
and finish reasons agree."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pytest

from client import Completion, IndexMismatchError, SearchIndex, VLMClient, prompts
from tests.images import encode, scene

GREEDY = {"max_tokens": 8}


def _consistent(completion: Completion) -> None:
    assert completion.finish_reason in ("stop", "length")
    assert completion.completion_tokens == len(completion.token_ids) == len(completion.logprobs) >= 1
    assert 0.0 < completion.confidence <= 1.0


def test_rank_orders_images_by_their_similarity_to_the_text(url: str, protocol: str) -> None:
    images = [encode(scene(seed=s)) for s in (70, 71, 72)]
    with VLMClient(url, protocol=protocol) as client:
        ranked = client.rank(text="a red square", images=images)
        similarity = client.embed_images(images) @ client.embed_texts(["a red square"])[0]
    assert [r.index for r in ranked] == list(np.argsort(-similarity, kind="stable"))
    assert sum(r.probability for r in ranked) == pytest.approx(1.0)


def test_rank_orders_texts_for_an_image_as_classify_does(url: str, protocol: str) -> None:
    texts = ["a photo of a cat", "a photo of a dog", "a photo of a car"]
    with VLMClient(url, protocol=protocol) as client:
        ranked = client.rank(image=encode(scene(seed=73)), texts=texts)
        probabilities = client.classify(encode(scene(seed=73)), ["cat", "dog", "car"])
    assert [texts[r.index].removeprefix("a photo of a ") for r in ranked] == list(probabilities)
    np.testing.assert_allclose([r.probability for r in ranked], list(probabilities.values()), atol=1e-5)


def test_search_answers_the_brute_force_best_image_and_refuses_another_models_index(
    url: str, protocol: str, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    paths = [folder / f"{s}.png" for s in range(4)] + [folder / "nested" / "4.png"]
    for seed, path in enumerate(paths):
        path.write_bytes(encode(scene(seed=80 + seed)))
    with VLMClient(url, protocol=protocol) as client:
        client.index_folder(folder, tmp_path / "photos.npz")
        hits = client.search(tmp_path / "photos.npz", "a blue circle", k=3)
        brute_force = client.embed_images(paths) @ client.embed_texts(["a blue circle"])[0]
        index = SearchIndex.load(tmp_path / "photos.npz")
        foreign = SearchIndex(index.names, index.embeddings, -index.probe)  # as if another model built it
        with pytest.raises(IndexMismatchError, match="rebuild the index"):
            client.search(foreign, "a blue circle")
    assert len(hits) == 3 and hits[0].name == str(paths[int(np.argmax(brute_force))].relative_to(folder))
    assert hits[0].score == pytest.approx(float(brute_force.max()), abs=1e-5)


def test_each_caption_style_sends_its_own_prompt_and_greedy_equals_generate(url: str, protocol: str) -> None:
    image = encode(scene(seed=90))
    with VLMClient(url, protocol=protocol) as client:
        captions = {style: client.caption(image, style, **GREEDY) for style in prompts.CAPTION_STYLES}
        direct = client.generate(prompts.caption("technical"), [image], **GREEDY)
    assert len({c.prompt_tokens for c in captions.values()}) == len(prompts.CAPTION_STYLES)
    assert captions["technical"].token_ids == direct.token_ids
    for completion in captions.values():
        _consistent(completion)


def test_captions_sample_at_rising_temperatures_with_distinct_seeds(url: str, protocol: str) -> None:
    image = encode(scene(seed=91))
    temperatures = prompts.caption_temperatures(3)
    with VLMClient(url, protocol=protocol) as client:
        captions = client.captions(image, 3, seed=5, **GREEDY)
        last = client.generate(prompts.caption("descriptive"), [image], temperature=temperatures[2], seed=7, **GREEDY)
    assert temperatures == sorted(temperatures) and len(set(temperatures)) == 3
    assert len(captions) == 3 and captions[2].token_ids == last.token_ids
    for completion in captions:
        _consistent(completion)


def test_ask_and_batch_ask_answer_in_input_order(url: str, protocol: str) -> None:
    pairs = [(encode(scene(seed=92 + k)), question) for k, question in enumerate(["what?", "where?", "which?"])]
    with VLMClient(url, protocol=protocol) as client:
        one_by_one = [client.ask(image, question, **GREEDY) for image, question in pairs]
        batched = client.batch_ask(pairs, concurrency=3, progress=False, **GREEDY)
    assert [c.token_ids for c in batched] == [c.token_ids for c in one_by_one]
    for completion in batched:
        _consistent(completion)


def test_chat_streams_deltas_then_the_final_result_over_several_turns(url: str, protocol: str) -> None:
    image = encode(scene(seed=95))
    messages = prompts.user_turn("what is it?")
    with VLMClient(url, protocol=protocol) as client:
        first = list(client.chat(messages, [image], **GREEDY))
        *pieces, completion = first
        messages += [{"role": "assistant", "content": completion.text}, {"role": "user", "content": "and then?"}]
        *_, second = client.chat(messages, [image], stream=False, **GREEDY)
    assert pieces and all(isinstance(p, str) for p in pieces) and "".join(pieces) == completion.text
    _consistent(completion)
    _consistent(second)
    assert second.prompt_tokens > completion.prompt_tokens + completion.completion_tokens


def test_document_kinds_and_queries_send_their_own_prompts(url: str, protocol: str) -> None:
    page = encode(scene(seed=96))
    with VLMClient(url, protocol=protocol) as client:
        kinds = {kind: client.analyze_document(page, kind, **GREEDY) for kind in prompts.DOCUMENT_KINDS}
        query = client.analyze_document(page, query="What is the total?", **GREEDY)
    sizes = {c.prompt_tokens for c in kinds.values()} | {query.prompt_tokens}
    assert len(sizes) == len(prompts.DOCUMENT_KINDS) + 1


def test_extract_structured_answers_json_valid_against_the_schema_it_is_given(url: str, protocol: str) -> None:
    image = encode(scene(seed=97))
    schema = {
        "type": "object",
        "properties": {"shapes": {"type": "integer", "minimum": 0}, "colour": {"enum": ["red", "blue"]}},
        "required": ["shapes", "colour"],
    }
    with VLMClient(url, protocol=protocol) as client:
        constrained = client.extract_structured(image, schema=schema, max_tokens=120)
        direct = client.generate(prompts.structured(), [image], max_tokens=120)
    jsonschema.validate(constrained, schema)
    assert prompts.parse_structured(direct.text) == {"raw_response": direct.text, "structured": False}
