"""``clip_tokenize``: UTF-8 texts [m] -> input_ids and attention_mask [m, context_length].

Every text is padded to the checkpoint's context length, so requests batch together in ``clip_text``;
longer texts are truncated to it, keeping the end-of-text token, as CLIP's tokenizer does.
"""

from __future__ import annotations

import os

import numpy as np

from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, decode_text, require_count

TOKENIZER_DIR = "tokenizer"


def load_tokenizer(folder: str) -> object:
    # One instance, one thread: the Rust tokenizer would otherwise start a thread per core for each batch.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


class ClipTokenize(PythonModel):
    def setup(self) -> None:
        self.tokenizer = load_tokenizer(str(self.artifacts / TOKENIZER_DIR))
        self.max_texts = self.int_parameter("max_texts")
        self.max_text_bytes = self.int_parameter("max_text_bytes")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blobs = as_bytes_list(inputs["text"])
        require_count("text", len(blobs), self.max_texts)
        texts = [decode_text(f"text[{i}]", blob, self.max_text_bytes) for i, blob in enumerate(blobs)]
        encoded = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="np",
        )
        return {
            "input_ids": encoded["input_ids"].astype(np.int64),
            "attention_mask": encoded["attention_mask"].astype(np.int64),
        }
