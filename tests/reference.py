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
        self.processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses

    def _text_inputs(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.processor.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt")

    def text_embeds_each_alone(self, texts: list[str]) -> np.ndarray:
        """Every text through the model on its own, unpadded: what no batching of any kind can have touched."""
        rows = []
        for text in texts:
            tokens = self.processor.tokenizer([text], truncation=True, return_tensors="pt")
            with torch.inference_mode():
                rows.append(self.model.get_text_features(**tokens).pooler_output)
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1).numpy()

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


class SiglipReference:
    """``SiglipModel`` on the checkpoint, fed as its processor feeds it (texts padded to ``max_length``)."""

    model_class = "SiglipModel"

    def __init__(self, checkpoint: Path) -> None:
        import transformers

        self.model = getattr(transformers, self.model_class).from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses

    def _inputs(self, images: list[Image.Image] | None, texts: list[str] | None) -> dict[str, torch.Tensor]:
        return self.processor(images=images, text=texts, padding="max_length", truncation=True, return_tensors="pt")

    def image_embeds(self, images: list[Image.Image]) -> np.ndarray:
        with torch.inference_mode():
            features = self.model.get_image_features(**self._inputs(images, None)).pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    def text_embeds(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            features = self.model.get_text_features(**self._inputs(None, texts)).pooler_output
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    def scores(self, images: list[Image.Image], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(logits_per_image, their sigmoid): SigLIP's own scores, each pair on its own."""
        with torch.inference_mode():
            logits = self.model(**self._inputs(images, texts)).logits_per_image
        return logits.numpy(), torch.sigmoid(logits).numpy()


class Siglip2Reference(SiglipReference):
    """``Siglip2Model`` on the checkpoint, images at the patch budget its image processor saved: ``Siglip2Processor``
    would otherwise apply its own default of 256 (its class defaults outrank the saved image processor's), which
    real google/siglip2-*-naflex checkpoints also save."""

    model_class = "Siglip2Model"

    def _inputs(self, images: list[Image.Image] | None, texts: list[str] | None) -> dict[str, torch.Tensor]:
        budget = self.processor.image_processor.max_num_patches
        return self.processor(
            images=images,
            text=texts,
            padding="max_length",
            truncation=True,
            max_num_patches=budget,
            return_tensors="pt",
        )


def min_row_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


class LlavaReference:
    """``generate`` of the checkpoint's own class (LLaVA's or LLaVA-NeXT's), one conversation at a time."""

    def __init__(self, checkpoint: Path) -> None:
        from transformers import AutoModelForImageTextToText

        self.model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses

    def inputs(self, messages: list[dict], images: list[Image.Image]) -> dict[str, torch.Tensor]:
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return self.processor(images=images or None, text=prompt, return_tensors="pt")

    def greedy(self, messages: list[dict], images: list[Image.Image], max_new_tokens: int) -> list[int]:
        inputs = self.inputs(messages, images)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return output[0, inputs["input_ids"].shape[1] :].tolist()

    def image_embeds(self, images: list[Image.Image]) -> torch.Tensor:
        """Projected image features [images, tokens, hidden], as the served vision tower and projector make."""
        pixels = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            return torch.stack(list(self.model.model.get_image_features(pixel_values=pixels).pooler_output))

    def packed_image_embeds(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """LLaVA-NeXT's: each image's packed embeddings [tokens, hidden], whose count depends on its size."""
        inputs = self.processor.image_processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            features = self.model.model.get_image_features(
                pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"]
            )
        return list(features.pooler_output)

    def text(self, token_ids: list[int], prompt_ids: list[int]) -> str:
        """The completion's text as it continues the prompt (a first token's leading space is kept, as vLLM and
        OpenAI-compatible servers give it; decoding the completion alone drops it)."""
        tokenizer = self.processor.tokenizer
        prompt = tokenizer.decode(prompt_ids, skip_special_tokens=True)
        return tokenizer.decode(prompt_ids + token_ids, skip_special_tokens=True)[len(prompt) :]


class Idefics3Reference(LlavaReference):
    """``Idefics3ForConditionalGeneration.generate``: its processor tiles each image by its size."""

    def __init__(self, checkpoint: Path) -> None:
        from transformers import Idefics3ForConditionalGeneration

        self.model = Idefics3ForConditionalGeneration.from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")


class Qwen2VLReference(LlavaReference):
    """``generate`` of the checkpoint's class (Qwen2-VL's or Qwen2.5-VL's) fed as its processor feeds it:
    ``mm_token_type_ids`` included, without which transformers 5 silently falls back to one-axis positions instead
    of M-RoPE."""

    def __init__(self, checkpoint: Path) -> None:
        from transformers import AutoModelForImageTextToText

        self.model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
        # Its video processor has no "pil" backend; the images' greedy tokens are the same with either (checked).
        self.processor = AutoProcessor.from_pretrained(checkpoint)

    def image_embeds_and_grids(self, images: list[Image.Image]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each image's merged embeddings [tokens, hidden] and the images' (t, h, w) patch grids."""
        inputs = self.processor.image_processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            features = self.model.model.get_image_features(
                pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"]
            )
        return list(features.pooler_output), inputs["image_grid_thw"]

    def video_inputs(
        self, messages: list[dict], images: list[Image.Image], videos: list[list[np.ndarray]], fps: float
    ) -> dict[str, torch.Tensor]:
        """As the processor feeds the model: the already-sampled frames as videos at ``fps`` (their real spacing),
        no frames sampled again, no per-frame pixel cap (the served preprocess applies none)."""
        from transformers.video_utils import VideoMetadata

        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        # Without metadata the processor assumes 24 fps (Qwen2.5-VL's second_per_grid_ts would be 2 / 24).
        metadata = [
            VideoMetadata(total_num_frames=len(f), fps=fps, frames_indices=list(range(len(f))), duration=len(f) / fps)
            for f in videos
        ]
        return self.processor(
            images=images or None,
            videos=[np.stack(frames) for frames in videos],
            video_metadata=metadata,
            text=prompt,
            do_sample_frames=False,
            cap_pixels_per_frame=False,
            return_tensors="pt",
        )

    def video_greedy(
        self, messages: list[dict], images: list[Image.Image], videos: list[list[np.ndarray]], fps: float, tokens: int
    ) -> list[int]:
        inputs = self.video_inputs(messages, images, videos, fps)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
        return output[0, inputs["input_ids"].shape[1] :].tolist()

    def video_logprobs(
        self, messages: list[dict], videos: list[list[np.ndarray]], fps: float, tokens: list[int]
    ) -> list[float]:
        """The log-probability of each of ``tokens`` as the continuation, the frames given at ``fps``."""
        inputs = self.video_inputs(messages, [], videos, fps)
        prompt = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"], torch.tensor([tokens])], dim=1)
        types = inputs["mm_token_type_ids"]
        extended = {
            **inputs,
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "mm_token_type_ids": torch.cat([types, torch.zeros(1, len(tokens), dtype=types.dtype)], dim=1),
        }
        with torch.inference_mode():
            logits = self.model(**extended).logits[0, prompt - 1 : -1].float()
        return torch.log_softmax(logits, -1).gather(1, torch.tensor(tokens)[:, None])[:, 0].tolist()
