"""Text embeddings with the number of tokens each text was read as: what an embeddings API reports as usage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from client.errors import VLMError

# Every text embedding request asks for both outputs: Triton 2.51's response cache keys on the inputs only, so
# a response cached for a request that asked for fewer outputs would answer a later request without them.
TEXT_EMBEDDING_OUTPUTS = ("text_embeds", "attention_mask")


@dataclass(frozen=True)
class TextEmbeddings:
    embeddings: np.ndarray  # [texts, dim], L2-normalised
    token_counts: list[int]  # per text: the tokenizer's attention mask summed (start and end tokens included)

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray | None]) -> TextEmbeddings:
        embeddings, mask = outputs["text_embeds"], outputs["attention_mask"]
        if embeddings is None or mask is None:
            raise VLMError("the text embedding model answered without text_embeds and attention_mask")
        return cls(embeddings, [int(n) for n in mask.sum(axis=1)])
