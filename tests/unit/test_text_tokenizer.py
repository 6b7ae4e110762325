"""serving.text_tokenizer: the checkpoint's saved tokenizer run by ``tokenizers`` alone gives exactly what
Hugging Face's tokenizer gives with ``padding=True, truncation=True``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from serving.text_tokenizer import TOKENIZER_CONFIG_FILE, TextTokenizer

TEXTS = [
    "a photo of a red circle",
    "Ünïcödé 日本語 text with émojis 🙂",
    "x",
    "  leading\tand\ntrailing   whitespace  ",
    "CAPITALS, punctuation!? and it's we'll they'd",
    "numbers 12345 and 3.14159",
    "an <|endoftext|> token inside the text",
    "a very long caption that goes on " + "and on " * 80,
]


@pytest.fixture(scope="module")
def hugging_face(tiny_clip: Path) -> object:
    return AutoTokenizer.from_pretrained(tiny_clip)


def reference(tokenizer: object, texts: list[str]) -> dict[str, np.ndarray]:
    encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
    return {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask")}


def assert_equal(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert set(ours) == {"input_ids", "attention_mask"}
    for name in ours:
        assert ours[name].dtype == np.int64
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_a_batch_of_varied_texts_is_tokenized_and_padded_exactly_as_hugging_face_does(
    tiny_clip: Path, hugging_face: object
) -> None:
    ours = TextTokenizer(tiny_clip).encode(TEXTS)
    assert ours["input_ids"].shape == (len(TEXTS), 77)  # the overlong text sets the width: the context
    assert_equal(ours, reference(hugging_face, TEXTS))


def test_each_text_alone_is_padded_to_its_own_length_only(tiny_clip: Path, hugging_face: object) -> None:
    tokenizer = TextTokenizer(tiny_clip)
    for text in TEXTS:
        ours = tokenizer.encode([text])
        assert_equal(ours, reference(hugging_face, [text]))
        assert ours["attention_mask"].all()  # nothing to pad against


def test_every_length_from_one_word_to_past_the_context_matches(tiny_clip: Path, hugging_face: object) -> None:
    words = np.random.default_rng(0).choice(["red", "circle", "above", "a", "tiny", "blue", "star"], 90)
    texts = [" ".join(words[:n]) for n in range(1, 91)]
    tokenizer = TextTokenizer(tiny_clip)
    lengths = {int(tokenizer.encode([text])["attention_mask"].sum()) for text in texts}
    assert set(range(3, 78)) <= lengths  # BOS + one word + EOS, up to the whole context
    assert_equal(tokenizer.encode(texts), reference(hugging_face, texts))
    for start in range(0, 90, 7):  # mixed-length batches pad each to the batch's longest
        assert_equal(tokenizer.encode(texts[start : start + 7]), reference(hugging_face, texts[start : start + 7]))


def test_truncation_keeps_the_end_of_text_token(tiny_clip: Path, hugging_face: object) -> None:
    ids = TextTokenizer(tiny_clip).encode(["a red circle " * 100])["input_ids"][0]
    assert len(ids) == 77
    assert (ids[0], ids[-1]) == (hugging_face.bos_token_id, hugging_face.eos_token_id)


def test_the_exported_repository_copy_tokenizes_as_the_checkpoint(
    tiny_clip: Path, model_repository: Path, hugging_face: object
) -> None:
    served = TextTokenizer(model_repository / "clip_tokenize" / "1" / "tokenizer")
    assert served.context_length == 77 and served.pad_id == hugging_face.pad_token_id
    assert_equal(served.encode(TEXTS), reference(hugging_face, TEXTS))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_max_length": int(1e30)}, "model_max_length must be the context length"),
        ({"pad_token": "<|not a token|>"}, "the pad token"),
    ],
)
def test_a_tokenizer_config_without_a_usable_context_or_pad_token_is_refused(
    tiny_clip: Path, tmp_path: Path, change: dict, message: str
) -> None:
    for name in ("tokenizer.json", TOKENIZER_CONFIG_FILE):
        (tmp_path / name).write_bytes((tiny_clip / name).read_bytes())
    config = json.loads((tmp_path / TOKENIZER_CONFIG_FILE).read_text())
    (tmp_path / TOKENIZER_CONFIG_FILE).write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        TextTokenizer(tmp_path)


def test_max_length_padding_fills_the_whole_context_as_hugging_face_does(tiny_clip: Path, hugging_face: object) -> None:
    ours = TextTokenizer(tiny_clip, padding="max_length").encode(TEXTS)
    encoded = hugging_face(TEXTS, padding="max_length", truncation=True, return_tensors="np")
    assert ours["input_ids"].shape == (len(TEXTS), hugging_face.model_max_length)
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[name], encoded[name])


def test_an_unknown_padding_is_refused_by_name(tiny_clip: Path) -> None:
    with pytest.raises(ValueError, match="sideways"):
        TextTokenizer(tiny_clip, padding="sideways")
