"""Hugging Face in-process references that served results are compared with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, CLIPModel


class ClipReference:
    def __init__(self, checkpoint: Path) -> None:
        self.model = CLIPModel.from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint)

    def _text_inputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.processor.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt")

    def image_embeds(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            features = self.model.get_image_features(pixel_values=pixels).pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    def text_embeds(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            features = self.model.get_text_features(**self._text_inputs(texts)).pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    def probs(self, images: list[Image.Image], texts: list[str]) -> np.ndarray:
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            output = self.model(pixel_values=pixels, **self._text_inputs(texts))
        return output.logits_per_image.softmax(dim=-1).numpy()


def min_row_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())
