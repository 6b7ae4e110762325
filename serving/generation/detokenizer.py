"""Incremental detokenisation: text pieces that never split a multi-byte character.

Each step decodes a short window of recent tokens twice (without and with the new token) and emits the
difference once it no longer ends in a replacement character, i.e. once the bytes form whole characters.
Decoding from the same window start on both sides keeps tokenizers that strip or add a leading space
(SentencePiece's "▁") consistent with decoding the whole sequence at once. ``tokenizers``' own
``DecodeStream`` raises on byte-fallback sequences that never become valid UTF-8, which a sampled
completion can produce, so it is not used.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0  # window start: tokens before it are already text
        self.read_offset = 0  # tokens before it have been emitted

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def step(self, token: int) -> str:
        """The new text ``token`` completes ("" while a character is still incomplete)."""
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        after = self._decode(self.ids[self.prefix_offset :])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return after[len(before) :]

    def flush(self) -> str:
        """Text still held back at the end (an unfinished character decodes to the replacement character)."""
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        after = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return after[len(before) :] if len(after) > len(before) else ""
