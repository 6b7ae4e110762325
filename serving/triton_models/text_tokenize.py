"""``<family>_tokenize``: UTF-8 texts [m] -> input_ids and attention_mask [m, L].

With ``padding: longest`` (CLIP) L is the request's longest text, not the context: a caption of 12 tokens costs the
text encoder 12 positions, not 77, and the encoder pads requests of different lengths to one batch (see its spec).
With ``padding: max_length`` (SigLIP, which pools the last position) every text is padded to the whole context, as
the checkpoint's processor does. Longer texts are truncated to the context length as the tokenizer's post-processor
says (CLIP keeps its end-of-text token). The tokenizer is the checkpoint's own ``tokenizer.json`` run by the
``tokenizers`` library: this process imports neither transformers nor torch.
"""

from __future__ import annotations

import numpy as np

from client.field_errors import FieldRef
from serving.text_tokenizer import TextTokenizer
from serving.triton_models.base import PythonModel
from serving.validators import as_bytes_list, decode_text, require_count

TOKENIZER_DIR = "tokenizer"
PADDING_PARAMETER, DEFAULT_PADDING = "padding", "longest"  # the config parameter, and its value when absent


class TextTokenize(PythonModel):
    def setup(self) -> None:
        padding = self.parameters.get(PADDING_PARAMETER, DEFAULT_PADDING)
        self.tokenizer = TextTokenizer(self.artifacts / TOKENIZER_DIR, padding=padding)
        self.max_texts = self.int_parameter("max_texts")
        self.max_text_bytes = self.int_parameter("max_text_bytes")

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blobs = as_bytes_list(inputs["text"])
        require_count("text", len(blobs), self.max_texts)
        texts = [decode_text(FieldRef("text", i), blob, self.max_text_bytes) for i, blob in enumerate(blobs)]
        return self.tokenizer.encode(texts)
