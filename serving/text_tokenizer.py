"""A dual encoder's text tokenizer from its saved files alone, with the ``tokenizers`` library (no
transformers, no torch): ``tokenizer.json`` holds the normaliser, pre-tokeniser, BPE model and the post-processor
that adds the start and end tokens; ``tokenizer_config.json`` the context length, pad token and sides.

Texts longer than the context are truncated to it, keeping the end-of-text token, and a batch is padded to its
longest text (``padding="longest"``) or to the whole context (``"max_length"``): what
``AutoTokenizer.from_pretrained(folder)(texts, padding=padding, truncation=True)`` gives
(``tests/unit/test_text_tokenizer.py`` compares them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
_LARGEST_CONTEXT = 1_000_000  # transformers writes a huge sentinel when a tokenizer has no limit
PADDINGS = ("longest", "max_length")


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken's dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class TextTokenizer:
    def __init__(self, folder: Path, padding: str = "longest") -> None:
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        # One thread per instance: the Rust tokenizer would otherwise start a thread per core for each batch.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / TOKENIZER_CONFIG_FILE).read_text())
        context = config.get("model_max_length")
        if not isinstance(context, int) or not 1 < context <= _LARGEST_CONTEXT:
            raise ValueError(f"{TOKENIZER_CONFIG_FILE}: model_max_length must be the context length, got {context!r}")
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        pad_token = _token_text(config.get("pad_token"))
        pad_id = None if pad_token is None else self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"{TOKENIZER_CONFIG_FILE}: the pad token {pad_token!r} is not in the vocabulary")
        self.context_length = context
        self.pad_id = pad_id
        self.tokenizer.enable_truncation(max_length=context, direction=config.get("truncation_side", "right"))
        self.tokenizer.enable_padding(
            direction=config.get("padding_side", "right"),
            pad_id=pad_id,
            pad_token=pad_token,
            length=context if padding == "max_length" else None,
        )

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` [len(texts), the longest text's tokens], int64."""
        encodings = self.tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
