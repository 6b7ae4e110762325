"""In-process baselines on the same checkpoint and inputs as the served run, chosen by the task's kind (embedding or
chat), never by family: transformers' Auto classes load any family.

- ``huggingface``: what a user would otherwise build: the Hugging Face model in this process, one request at a
  time, PyTorch eager (the body of a plain FastAPI endpoint). Dual encoders: ``AutoModel`` + ``AutoProcessor``,
  texts padded and scores made as the exported model records it (its tokenizer's ``padding``, its scoring step's
  ``scoring``: benchmarks/exported.py); VLMs: ``AutoModelForImageTextToText`` with the processor's chat template.
- ``limit``: what the hardware allows: encoders run the served pipeline in-process (decode, the checkpoint's
  image processor in the exported model's pixel layout, the exported ONNX models in ONNX Runtime, the served
  scoring) at their best batch size, read from the exported model's folders by its layout; the decoder is Hugging
  Face ``generate`` on a whole batch at once.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.exported import DualEncoderLayout
from benchmarks.workloads import Payload, Sample, llava_messages
from client.catalog import Task

MAX_PIXELS, MAX_ASPECT_RATIO = 36_000_000, 20  # the served preprocessors' limits


@dataclass(frozen=True)
class BaselineRun:
    name: str  # "huggingface" or "limit"
    description: str
    samples: list[Sample]
    start: float
    end: float
    batch_size: int = 1


RoundRunner = Callable[[int], list["BaselineRun"]]  # one round of every baseline, after that many warm-up calls


@dataclass(frozen=True)
class BaselineSettings:
    checkpoint: Path
    repository: Path | None  # the exported repository the limit reads its ONNX models from
    requests: int
    limit_batch_sizes: tuple[int, ...]
    warmup: int = 1
    layout: DualEncoderLayout | None = None  # a dual encoder's, as exported (its padding and scoring)


def _run(
    name: str, description: str, calls: Sequence[Callable[[], list[Sample]]], warmup: int, batch: int
) -> BaselineRun:
    """Each call serves one request or a batch of them: one sample per request."""
    for call in calls[:warmup]:
        call()
    start = time.perf_counter()
    samples = [sample for call in calls[warmup:] for sample in call()]
    return BaselineRun(name, description, samples, start, time.perf_counter(), batch)


def _best(runs: list[BaselineRun], amount: Callable[[Sample], float]) -> BaselineRun:
    """The run that got the most done per second (images, texts or tokens)."""
    return max(runs, key=lambda run: sum(amount(s) for s in run.samples) / (run.end - run.start))


def _rgb(blob: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(blob)).convert("RGB")


def _batches(items: Sequence[Any], size: int, count: int) -> list[list[Any]]:
    """``count`` batches of ``size`` items, cycling through ``items``."""
    return [[items[(b * size + i) % len(items)] for i in range(size)] for b in range(count)]


def _pooled(features: Any) -> Any:
    """transformers 5's ``get_*_features`` return a model output whose ``pooler_output`` is the embedding."""
    return getattr(features, "pooler_output", features)


def _scores(scoring: str) -> Callable[[Any], Any]:
    """The served scoring (serving/similarity.py) in torch: a softmax over the texts or a sigmoid per pair."""
    import torch

    table: dict[str, Callable[[Any], Any]] = {
        "softmax": lambda logits: logits.softmax(dim=-1),
        "sigmoid": torch.sigmoid,
    }
    return table[scoring]


class _HfDualEncoder:
    """Any dual encoder through ``AutoModel`` and ``AutoProcessor``: ``get_image_features`` /
    ``get_text_features``, texts padded as the exported tokenizer pads them, scores as its scoring step makes them
    (the model's ``logits_per_image`` hold its logit scale and bias)."""

    def __init__(self, checkpoint: Path, layout: DualEncoderLayout) -> None:
        from transformers import AutoModel, AutoProcessor

        self.model = AutoModel.from_pretrained(checkpoint).eval()
        self.processor = AutoProcessor.from_pretrained(checkpoint)
        self.padding = layout.padding
        self.score = _scores(layout.scoring)

    @property
    def description(self) -> str:
        return f"Hugging Face {type(self.model).__name__} in-process, one request at a time (PyTorch eager)"

    def _texts(self, texts: list[str]) -> Any:
        return self.processor(text=texts, padding=self.padding, truncation=True, return_tensors="pt")

    def image_embeds(self, blobs: list[bytes]) -> Sample:
        import torch

        start = time.perf_counter()
        pixels = self.processor(images=[_rgb(b) for b in blobs], return_tensors="pt")
        with torch.inference_mode():
            torch.nn.functional.normalize(_pooled(self.model.get_image_features(**pixels)), dim=-1)
        return Sample(start, time.perf_counter(), images=len(blobs))

    def text_embeds(self, texts: list[str]) -> Sample:
        import torch

        start = time.perf_counter()
        tokens = self._texts(texts)
        with torch.inference_mode():
            torch.nn.functional.normalize(_pooled(self.model.get_text_features(**tokens)), dim=-1)
        return Sample(start, time.perf_counter())

    def rank(self, blobs: list[bytes], texts: list[str]) -> Sample:
        import torch

        start = time.perf_counter()
        images = self.processor(images=[_rgb(b) for b in blobs], return_tensors="pt")
        with torch.inference_mode():
            self.score(self.model(**images, **self._texts(texts)).logits_per_image)
        return Sample(start, time.perf_counter(), images=len(blobs))


class _OnnxDualEncoder:
    """The served dual-encoder pipeline in-process, from the exported model's folders (its layout): the same
    decoder, image processor (either pixel layout), tokenizer, ONNX files and scoring."""

    def __init__(self, repository: Path, layout: DualEncoderLayout) -> None:
        from serving.onnx_runner import OnnxRunner
        from serving.similarity import read_logit_bias, read_logit_scale
        from serving.text_tokenizer import TextTokenizer
        from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR, PIXEL_LAYOUTS, draft_side
        from serving.triton_models.text_tokenize import TOKENIZER_DIR

        threads = os.cpu_count() or 1
        version = "1"
        self.image_processor = PIXEL_LAYOUTS[layout.pixel_layout](
            repository / layout.preprocess / version / IMAGE_PROCESSOR_DIR
        )
        self.draft_side = draft_side(self.image_processor)
        self.tokenizer = TextTokenizer(repository / layout.tokenize / version / TOKENIZER_DIR, padding=layout.padding)
        self.vision = OnnxRunner(repository / layout.vision / version / "model.onnx", intra_op_threads=threads).open()
        self.text = OnnxRunner(repository / layout.text / version / "model.onnx", intra_op_threads=threads).open()
        similarity = repository / layout.similarity / version
        self.logit_scale, self.logit_bias = read_logit_scale(similarity), read_logit_bias(similarity)
        self.scoring = layout.scoring

    def _image_embeds(self, blobs: list[bytes]) -> np.ndarray:
        from serving.images import decode_image

        rgb = [decode_image(b, "image", MAX_PIXELS, MAX_ASPECT_RATIO, self.draft_side) for b in blobs]
        per_image = [self.image_processor.tensors(image) for image in rgb]
        feeds = {name: np.stack([tensors[name] for tensors in per_image]) for name in per_image[0]}
        return self.vision.run(feeds)["image_embeds"]

    def _text_embeds(self, texts: list[str]) -> np.ndarray:
        return self.text.run(self.tokenizer.encode(texts))["text_embeds"]

    def image_embeds(self, blobs: list[bytes]) -> Sample:
        start = time.perf_counter()
        self._image_embeds(blobs)
        return Sample(start, time.perf_counter(), images=len(blobs))

    def text_embeds(self, texts: list[str]) -> Sample:
        start = time.perf_counter()
        self._text_embeds(texts)
        return Sample(start, time.perf_counter())

    def rank_each(self, batch: list[tuple[list[bytes], list[str]]]) -> Sample:
        """Every request's images and texts in one encoder call each, then each request's own scores."""
        from serving.similarity import image_text_scores

        start = time.perf_counter()
        images = self._image_embeds([b for blobs, _ in batch for b in blobs])
        texts = self._text_embeds([t for _, request_texts in batch for t in request_texts])
        row = column = 0
        for blobs, request_texts in batch:
            image_text_scores(
                images[row : row + len(blobs)],
                texts[column : column + len(request_texts)],
                self.logit_scale,
                self.logit_bias,
                self.scoring,
            )
            row, column = row + len(blobs), column + len(request_texts)
        return Sample(start, time.perf_counter(), images=len(images))


_LIMIT_STEPS: dict[Task, str] = {
    "image_embed": "decode + preprocess",
    "text_embed": "tokenize",
    "rank": "decode + preprocess + tokenize + scoring",
}


def _per_request(sample: Sample, batch: list[tuple[list[bytes], list[str]]]) -> list[Sample]:
    """A batch's timing, once for each request in it: requests per second count requests, not batches."""
    return [Sample(sample.start, sample.end, images=len(images)) for images, _ in batch]


def _requests(payload: Payload, count: int) -> list[tuple[list[bytes], list[str]]]:
    """Request ``n``'s images and texts, as the served run sends them (less the cache-busting serial)."""
    images, texts = payload.images, payload.texts
    per_image, per_text = payload.images_per_request, payload.texts_per_request
    return [
        (
            [images[(n * per_image + i) % len(images)] for i in range(per_image)] if images else [],
            [texts[(n * per_text + i) % len(texts)] for i in range(per_text)] if texts else [],
        )
        for n in range(count)
    ]


def _dual_encoder_baselines(task: Task, payload: Payload, settings: BaselineSettings) -> RoundRunner:
    if settings.layout is None:
        raise ValueError("a dual encoder's baselines need its exported layout (its padding and scoring)")
    layout = settings.layout
    count = settings.warmup + settings.requests
    requests = _requests(payload, count)
    hf = _HfDualEncoder(settings.checkpoint, layout)
    onnx = _OnnxDualEncoder(settings.repository, layout) if settings.repository is not None else None
    ones: dict[Task, Callable[[tuple[list[bytes], list[str]]], Sample]] = {
        "image_embed": lambda r: hf.image_embeds(r[0]),
        "text_embed": lambda r: hf.text_embeds(r[1]),
        "rank": lambda r: hf.rank(r[0], r[1]),
    }
    one = ones[task]

    def run_round(warmup: int) -> list[BaselineRun]:
        runs = [
            _run(
                "huggingface",
                hf.description,
                [lambda r=r: [one(r)] for r in requests[settings.warmup - warmup :]],
                warmup,
                1,
            )
        ]
        if onnx is None:
            return runs
        limits = []
        for size in settings.limit_batch_sizes:
            batches = _batches(requests, size, max(2, -(-count // size)))
            calls: dict[Task, Callable[[list[tuple[list[bytes], list[str]]]], Sample]] = {
                "image_embed": lambda batch: onnx.image_embeds([b for r in batch for b in r[0]]),
                "text_embed": lambda batch: onnx.text_embeds([t for r in batch for t in r[1]]),
                "rank": lambda batch: onnx.rank_each(batch),
            }
            call = calls[task]
            limits.append(
                _run(
                    "limit",
                    f"{_LIMIT_STEPS[task]} + ONNX Runtime in-process at batch {size} ({os.cpu_count()} threads)",
                    [lambda batch=batch, call=call: _per_request(call(batch), batch) for batch in batches],
                    1,
                    size,
                )
            )
        return [*runs, _best(limits, lambda s: s.images or 1)]

    return run_round


class _TokenTimes:
    """A ``generate`` streamer that notes when the first new token arrived (the first put is the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first_token: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_token = time.perf_counter()

    def end(self) -> None:
        pass


def _new_tokens(row: Sequence[int], eos: set[int]) -> int:
    """Tokens a completion holds: up to and including the first EOS (the rest of a batch row is padding)."""
    for index, token in enumerate(row):
        if token in eos:
            return index + 1
    return len(row)


def _vlm_baselines(payload: Payload, settings: BaselineSettings) -> RoundRunner:
    """Any VLM transformers loads as image-text-to-text (LLaVA, LLaVA-NeXT, Idefics3, ...), prompted through its
    processor's chat template."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.generation.streamers import BaseStreamer

    model = AutoModelForImageTextToText.from_pretrained(settings.checkpoint).eval()
    processor = AutoProcessor.from_pretrained(settings.checkpoint)
    eos_ids = model.generation_config.eos_token_id
    eos = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    streamer_type = type("TokenTimes", (_TokenTimes, BaseStreamer), {})
    sampling = payload.sampling()

    def generate(batch: list[tuple[list[bytes], list[str]]]) -> list[Sample]:
        start = time.perf_counter()
        prompts = [
            processor.apply_chat_template(llava_messages(texts[0], len(images)), add_generation_prompt=True)
            for images, texts in batch
        ]
        images = [_rgb(blob) for request_images, _ in batch for blob in request_images]
        inputs = processor(images=images or None, text=prompts, padding=True, return_tensors="pt")
        streamer = streamer_type()
        with torch.inference_mode():
            # Greedy and exactly max_tokens tokens, as the served requests ask (Payload.sampling: ignore_eos and
            # min_tokens there; min_new_tokens keeps EOS out here).
            output = model.generate(
                **inputs,
                max_new_tokens=sampling["max_tokens"],
                min_new_tokens=sampling["min_tokens"],
                do_sample=False,
                streamer=streamer,
            )
        end = time.perf_counter()
        prompt_length = inputs["input_ids"].shape[1]
        return [
            Sample(
                start,
                end,
                len(request[0]),
                streamer.first_token,
                _new_tokens(row[prompt_length:].tolist(), eos),
                int(mask.sum()),
            )
            for request, row, mask in zip(batch, output, inputs["attention_mask"], strict=True)
        ]

    requests = _requests(payload, settings.warmup + settings.requests)

    def run_round(warmup: int) -> list[BaselineRun]:
        sequential = _run(
            "huggingface",
            f"Hugging Face {type(model).__name__}.generate in-process, one request at a time (greedy)",
            [lambda r=r: generate([r]) for r in requests[settings.warmup - warmup :]],
            warmup,
            1,
        )
        limits = []
        for size in settings.limit_batch_sizes:
            batches = _batches(requests[settings.warmup :], size, max(1, -(-settings.requests // size)))
            if warmup:
                generate(batches[0][:1])  # warm-up at this batch shape's code path
            start = time.perf_counter()
            samples = [sample for batch in batches for sample in generate(batch)]
            limits.append(
                BaselineRun(
                    "limit",
                    f"Hugging Face generate in-process on batches of {size} (greedy, left-padded)",
                    samples,
                    start,
                    time.perf_counter(),
                    size,
                )
            )
        return [sequential, _best(limits, lambda s: s.output_tokens or 0)]

    return run_round


# By task: what is measured decides the baselines (a dual encoder's or a VLM's); the Auto classes and the exported
# layout take care of the family.
BASELINES: dict[Task, Callable[[Payload, BaselineSettings], RoundRunner]] = {
    "image_embed": partial(_dual_encoder_baselines, "image_embed"),
    "text_embed": partial(_dual_encoder_baselines, "text_embed"),
    "rank": partial(_dual_encoder_baselines, "rank"),
    "chat": _vlm_baselines,
}


class Baselines:
    """The baselines of one benchmark, their models loaded once; ``run()`` measures one round of each, so a run can
    alternate served and baseline windows (A/B/A/B) and a noisy neighbour slows both sides alike."""

    def __init__(self, task: Task, payload: Payload, settings: BaselineSettings) -> None:
        self.settings = settings
        self._run_round = BASELINES[task](payload, settings)
        self.rounds = 0

    def run(self) -> list[BaselineRun]:
        """The first round starts with the settings' warm-up calls; later rounds find everything warm."""
        warmup = self.settings.warmup if self.rounds == 0 else 0
        self.rounds += 1
        return self._run_round(warmup)


def run_baselines(task: Task, payload: Payload, settings: BaselineSettings) -> list[BaselineRun]:
    return Baselines(task, payload, settings).run()
