"""Train a CLIP-style byte-level BPE tokenizer locally with ``tokenizers`` (no hub download).

The tokenizer has CLIP's normaliser, pre-tokeniser, ``</w>`` word suffix and special tokens, so
``CLIPTokenizer`` wraps it exactly as it wraps OpenAI's vocabulary.
"""

from __future__ import annotations

import itertools
import json

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white", "grey", "pink", "brown", "cyan")
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart", "ring", "line")
OBJECTS = ("dog", "cat", "car", "house", "tree", "bird", "boat", "flower", "person", "chart", "table", "document")
SIZES = ("small", "large", "tiny", "big")
PLACES = ("above", "below", "left of", "right of", "next to", "inside", "on top of")
TEMPLATES = (
    "a photo of a {}.",
    "a picture of the {}",
    "an image showing a {}",
    "a drawing of a {} on a plain background",
    "this is a {}",
)


def training_corpus() -> list[str]:
    """Deterministic captions over a small vocabulary of colours, shapes and objects."""
    nouns = [f"{s} {c} {n}" for s, c, n in itertools.product(SIZES, COLOURS, SHAPES + OBJECTS)]
    scenes = [f"a {a} {p} a {b}" for a, p, b in itertools.product(COLOURS, PLACES, SHAPES)]
    return [t.format(noun) for t, noun in itertools.product(TEMPLATES, nouns)] + scenes + [str(i) for i in range(100)]


def train_clip_tokenizer(vocab_size: int, model_max_length: int = 77) -> CLIPTokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=EOS, continuing_subword_prefix="", end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any UTF-8 text tokenizes, nothing is unknown
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    merges = [tuple(pair) for pair in json.loads(tokenizer.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=canonical_vocab(merges), merges=merges, model_max_length=model_max_length)


def canonical_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's layout: specials, the 256 byte symbols, each again with ``</w>``, then one token per merge.

    Rebuilt rather than taken from the trainer, whose ids for end-of-word symbols vary from run to run,
    and which leaves out end-of-word symbols its corpus never ended a word with (they would be unknown).
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = [BOS, EOS, *alphabet, *(symbol + "</w>" for symbol in alphabet), *(a + b for a, b in merges)]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}
