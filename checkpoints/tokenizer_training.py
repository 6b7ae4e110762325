"""Train CLIP- and Llama-style BPE tokenizers and a SigLIP-style Unigram one locally with ``tokenizers`` (no hub
download).

The CLIP tokenizer has CLIP's normaliser, pre-tokeniser, ``</w>`` word suffix and special tokens, so
``CLIPTokenizer`` wraps it exactly as it wraps OpenAI's vocabulary. The Llama one has SentencePiece's
``▁`` word marker and byte fallback, so ``LlamaTokenizer`` wraps it as it wraps Llama 2's. The SigLIP one has
SigLIP's layout (``<pad>``, ``</s>``, ``<unk>``; ``</s>`` ends every text and pads it) in a ``tokenizer.json``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPTokenizer, LlamaTokenizer, PreTrainedTokenizerFast

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")
SIGLIP_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 as in google/siglip-*
BYTE_TOKENS = tuple(f"<0x{byte:02X}>" for byte in range(256))
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
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
POSITIONS = ("top left corner", "top right corner", "bottom left corner", "bottom right corner", "centre", "middle")
MATERIALS = ("wooden", "metal", "glass", "paper", "plastic", "stone")
BACKGROUNDS = ("sky", "grass", "water", "road", "wall", "floor", "street", "garden", "kitchen", "office")
# Free-form turns, for words and punctuation the generated ones lack.
DIALOGUES = (
    ("Can you describe this picture in detail?", "Certainly. The picture contains simple shapes with thick outlines."),
    ("What is happening in this photo?", "Nothing much: the objects are standing still, arranged neatly in rows."),
    ("Please write a short caption.", "Colourful geometric shapes scattered across a plain background."),
    ("Which object is the largest?", "The biggest object is probably the house, although the tree looks taller."),
    ("Is the dog bigger than the cat?", "Yes, the dog is bigger, but the cat seems closer to the camera."),
    ("What text is written on the document?", "The document shows a title, a number and a small table of values."),
    ("Read the chart and summarise it.", "The chart compares monthly totals; the highest value appears during summer."),
    ("Are these shapes overlapping?", "Some of them overlap slightly, while others are clearly separated."),
    (
        "What time of day does it look like?",
        "It looks like early morning because the light is soft and shadows are long.",
    ),
    ("How would you count the items?", "Group the items by colour, then count each group and add everything together."),
)


def training_corpus() -> list[str]:
    """Deterministic captions over a small vocabulary of colours, shapes and objects."""
    nouns = [f"{s} {c} {n}" for s, c, n in itertools.product(SIZES, COLOURS, SHAPES + OBJECTS)]
    scenes = [f"a {a} {p} a {b}" for a, p, b in itertools.product(COLOURS, PLACES, SHAPES)]
    return [t.format(noun) for t, noun in itertools.product(TEMPLATES, nouns)] + scenes + [str(i) for i in range(100)]


def conversation_corpus() -> list[str]:
    """``training_corpus()`` plus question/answer turns in the LLaVA-1.5 prompt format, in mixed case."""
    turns = list(DIALOGUES)
    for shape, colour in itertools.product(SHAPES, COLOURS):
        turns.append((f"What colour is the {shape}?", f"The {shape} is {colour}."))
        turns.append((f"What shape is the {colour} object?", f"It is a {shape}."))
        turns.append((f"Is there a {colour} {shape} in the image?", f"Yes, there is a {colour} {shape}."))
    for thing, number in itertools.product(SHAPES + OBJECTS, NUMBERS):
        turns.append((f"How many {thing}s are there?", f"There are {number} {thing}s."))
    for thing, place, shape in itertools.product(OBJECTS, PLACES, SHAPES):
        turns.append((f"Where is the {thing}?", f"The {thing} is {place} the {shape}."))
        turns.append((f"What is {place} the {shape}?", f"A {thing}."))
    for thing, position, material, background in itertools.product(OBJECTS, POSITIONS, MATERIALS, BACKGROUNDS):
        answer = f"The image shows a {material} {thing} in the {position}, in front of the {background}."
        turns.append(("Describe the image.", answer))
    return training_corpus() + [f"USER: {question} ASSISTANT: {answer}" for question, answer in turns]


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


def train_llama_tokenizer(
    vocab_size: int, model_max_length: int, corpus: Sequence[str] | None = None
) -> LlamaTokenizer:
    """A Llama-2-style tokenizer of at most ``vocab_size`` tokens, trained on ``corpus`` (default:
    ``conversation_corpus()``, which has room for about 1130).

    Words are split on spaces only, so no merge spans a ``▁``: ``LlamaTokenizer``'s unsplit Metaspace
    then tokenizes exactly as the trainer did. Characters outside the corpus fall back to byte tokens.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=LLAMA_SPECIALS[0], byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS),  # the byte tokens are added after training
        special_tokens=list(LLAMA_SPECIALS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(conversation_corpus() if corpus is None else corpus, trainer)
    trained = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(pair) for pair in trained["merges"]]
    return LlamaTokenizer(
        vocab=canonical_llama_vocab(merges, trained["vocab"]),
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        legacy=False,
        padding_side="left",
        model_max_length=model_max_length,
    )


def canonical_llama_vocab(merges: list[tuple[str, str]], trained_vocab: dict[str, int]) -> dict[str, int]:
    """Llama 2's layout: specials, the 256 byte tokens, one token per merge, then the single characters.

    Rebuilt rather than taken from the trainer so that ids depend only on the merges and the alphabet.
    """
    merged = [a + b for a, b in merges]
    characters = sorted(set(trained_vocab) - set(LLAMA_SPECIALS) - set(merged))
    tokens = [*LLAMA_SPECIALS, *BYTE_TOKENS, *merged, *characters]
    return {token: index for index, token in enumerate(dict.fromkeys(tokens))}


def train_siglip_tokenizer(vocab_size: int, model_max_length: int) -> PreTrainedTokenizerFast:
    """A SigLIP-style tokenizer: lower-cased Unigram pieces with ``▁`` word markers, ``</s>`` appended to every text
    and used as the pad token, as google/siglip-* checkpoints' tokenizers do."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(SIGLIP_SPECIALS), unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    vocab = canonical_unigram_vocab(json.loads(tokenizer.to_str())["model"]["vocab"])
    tokenizer.model = models.Unigram(vocab, SIGLIP_SPECIALS.index("<unk>"))
    end = SIGLIP_SPECIALS[1]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {end}", special_tokens=[(end, tokenizer.token_to_id(end))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=end, pad_token=end, unk_token="<unk>", model_max_length=model_max_length
    )


def canonical_unigram_vocab(trained: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The specials, then the pieces by score: the trainer's scores differ in their last digits from run to run (and
    so does the order of near-equal ones), so they are rounded and ties broken by the piece, and ids depend only on
    the corpus."""
    scores = {piece: round(score, 6) for piece, score in trained}
    pieces = sorted(set(scores) - set(SIGLIP_SPECIALS), key=lambda piece: (-scores[piece], piece))
    return [(piece, scores.get(piece, 0.0)) for piece in (*SIGLIP_SPECIALS, *pieces)]
