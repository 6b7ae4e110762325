"""Question answering and captioning on the shapes world's held-out split, in process or through a server.

Scoring takes any ``answer(requests)`` callable that answers a list of (image, request, max_tokens), so the
served evaluation reuses it unchanged; torch and transformers are imported only by the in-process answerer.
Exact match compares the reply, stripped of surrounding spaces, with the one-word answer. Caption attribute
accuracy checks each shape's size, colour and kind in the caption's "<size> <colour> <kind>" phrases: a shape
counts as named when some phrase has its kind, and its size and colour are right when that phrase has them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from checkpoints.shapes_eval import image_size
from checkpoints.shapes_world import CAPTION_REQUEST, COLOURS, KINDS, SIZES, Sample, make_dataset
from client.prompts import user_turn

Request = tuple[Image.Image, str, int]  # image, request text, max tokens
Answerer = Callable[[Sequence[Request]], list[str]]
HELD_OUT_SEED = 0
ANSWER_TOKENS = 8  # one word and its end: room to see a wrong, longer reply
CAPTION_TOKENS = 48
PHRASE = re.compile(rf"\b({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(KINDS)})\b")
ATTRIBUTES = ("size", "colour", "kind")


def held_out_scenes(count: int, image_size: int, seed: int = HELD_OUT_SEED) -> list[Sample]:
    return make_dataset("held-out", count, seed, image_size)


def caption_attributes(caption: str, sample: Sample) -> int:
    """How many of the scene's shapes' size, colour and kind the caption gets right (3 per shape at most)."""
    phrases = {kind: (size, colour) for size, colour, kind in PHRASE.findall(caption)}
    right = 0
    for shape in sample.scene.shapes:
        if shape.kind in phrases:
            size, colour = phrases[shape.kind]
            right += 1 + (size == shape.size) + (colour == shape.colour)
    return right


def vqa_scores(samples: Sequence[Sample], answer: Answerer) -> dict[str, float | int]:
    """Exact-match accuracy over every held-out question, and caption attribute accuracy."""
    questions = [(sample.image, qa.question, ANSWER_TOKENS) for sample in samples for qa in sample.questions]
    expected = [qa.answer for sample in samples for qa in sample.questions]
    replies = answer(questions)
    captions = answer([(sample.image, CAPTION_REQUEST, CAPTION_TOKENS) for sample in samples])
    exact = sum(reply.strip() == truth for reply, truth in zip(replies, expected, strict=True))
    attributes = sum(caption_attributes(c, s) for c, s in zip(captions, samples, strict=True))
    possible = len(ATTRIBUTES) * sum(len(sample.scene.shapes) for sample in samples)
    return {
        "images": len(samples),
        "questions": len(questions),
        "exact_match": exact,
        "exact_match_accuracy": exact / len(questions),
        "caption_attributes": attributes,
        "caption_attribute_accuracy": attributes / possible,
    }


def local_answerer(checkpoint: Path, batch_size: int = 32) -> Answerer:
    """Greedy ``generate`` of the Hugging Face checkpoint in this process, in left-padded batches."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses

    @torch.inference_mode()
    def answer(requests: Sequence[Request]) -> list[str]:
        replies: list[str] = []
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            texts = [processor.apply_chat_template(user_turn(text), add_generation_prompt=True) for _, text, _ in chunk]
            inputs = processor(images=[image for image, _, _ in chunk], text=texts, padding=True, return_tensors="pt")
            output = model.generate(**inputs, max_new_tokens=max(n for _, _, n in chunk), do_sample=False)
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            replies += [_trimmed(processor, tokens, n) for tokens, (_, _, n) in zip(new_tokens, chunk, strict=True)]
        return replies

    return answer


def _trimmed(processor: object, tokens: Sequence[int], max_tokens: int) -> str:
    """The reply as one request of ``max_tokens`` would get it: cut at its budget, special tokens dropped."""
    return processor.decode(tokens[:max_tokens], skip_special_tokens=True)  # type: ignore[attr-defined]


def served_answerer(url: str, protocol: str, concurrency: int = 8, model: str | None = None) -> Answerer:
    """Through the ensemble of the VLM served as ``model`` (default ``llava``) with the thin client, several requests
    in flight (no torch)."""
    from client import VLMClient

    client = VLMClient(url, protocol=protocol, chat_model=model)

    def one(request: Request) -> str:
        image, text, max_tokens = request
        return client.generate(user_turn(text), images=[image], max_tokens=max_tokens).text

    def answer(requests: Sequence[Request]) -> list[str]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, requests))

    return answer


def evaluate_llava(checkpoint: Path, count: int) -> dict[str, float | int]:
    """Scores of a LLaVA checkpoint on the questions and captions of ``count`` held-out scenes."""
    return vqa_scores(held_out_scenes(count, image_size(checkpoint)), local_answerer(checkpoint))


def evaluate_served_llava(
    checkpoint: Path, count: int, url: str, protocol: str, model: str | None = None
) -> dict[str, float | int]:
    """The same held-out scenes and requests as ``evaluate_llava``, answered by the served export of ``checkpoint``
    (the model served as ``model``; default ``llava``)."""
    return vqa_scores(held_out_scenes(count, image_size(checkpoint)), served_answerer(url, protocol, model=model))
