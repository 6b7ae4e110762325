"""Train a small CLIP from scratch on the shapes world, reproducibly, in a few minutes on two CPU cores.

The result is a standard checkpoint (``CLIPModel`` + ``CLIPProcessor``) whose zero-shot answers mean
something, so served results can be checked against what the picture shows rather than against noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import pre_tokenizers
from tqdm import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from checkpoints.shapes_world import (
    COLOUR_PROMPT,
    COLOURS,
    KINDS,
    NUMBERS,
    POSITIONS,
    SHAPE_PROMPT,
    SIZES,
    WHERE,
    Scene,
    Shape,
    make_scenes,
    render,
)
from checkpoints.tokenizer_training import canonical_vocab
from checkpoints.training_loop import adamw, batches, deterministic, scheduled

LOG_NAME = "training_log.json"
TRAINING_VERSION = 1  # bump when this code or the world changes what a config trains: old checkpoints are redone
# Texts true of a scene besides its caption, one per shape; the zero-shot prompts are among them.
SHAPE_TEMPLATES = (
    COLOUR_PROMPT,
    SHAPE_PROMPT,
    "a photo of a {colour} {kind}",
    "a {size} {kind}",
    "a {colour} {kind} {where}",
    "a {kind} {where}",
)
CAPTION_SHARE = 0.25  # how often an image is paired with its caption rather than a single-shape text


@dataclass(frozen=True)
class TrainingConfig:
    # One patch per cell of the world's 3x3 grid: a shape then sits in one patch wherever it is. With 8-pixel
    # patches straddling cells, a ViT this small was still guessing shapes after 1000 steps.
    image_size: int = 96
    patch_size: int = 32
    vision_hidden: int = 128
    vision_layers: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 4
    projection_dim: int = 128
    tokenizer_vocab_size: int = 1024
    train_images: int = 8192
    batch_size: int = 128
    steps: int = 1200
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("the image size must be a multiple of the patch size")
        if self.vision_hidden % self.heads or self.text_hidden % self.heads:
            raise ValueError(f"hidden sizes must be divisible by the {self.heads} heads")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError("warm-up must be shorter than the schedule")
        if self.batch_size > self.train_images:
            raise ValueError("a batch cannot be larger than the training set")

    def fingerprint(self) -> str:
        """Identifies what this config trains: equal fingerprints, identical weights."""
        payload = json.dumps({"version": TRAINING_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


SHAPES_CLIP = TrainingConfig()


def short_schedule(steps: int = 20) -> TrainingConfig:
    """A few seconds of training of a tiny model, for tests: the same code path, meaningless weights."""
    return dataclasses.replace(
        SHAPES_CLIP,
        vision_hidden=32,
        vision_layers=1,
        text_hidden=32,
        text_layers=1,
        heads=2,
        projection_dim=32,
        train_images=256,
        batch_size=32,
        steps=steps,
        warmup_steps=min(5, steps - 1),
    )


def shapes_corpus() -> list[str]:
    """The words of the world's captions and training texts, in those texts, so that each becomes one token."""
    words = [*COLOURS, *KINDS, *SIZES, *POSITIONS, *NUMBERS, *WHERE.values(), "above below to the of and"]
    shapes = [Shape(k, c, s, p) for k, c, s, p in itertools.product(KINDS, COLOURS, SIZES, POSITIONS)]
    return words + [text for shape in shapes for text in shape_texts(shape)]


def train_tokenizer(vocab_size: int, model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer trained on the world's words, with ``train_clip_tokenizer``'s pipeline and id layout.

    ``train_new_from_iterator`` retrains CLIP's own normaliser, pre-tokeniser and ``</w>`` suffix;
    ``canonical_vocab`` then gives ids that depend only on the merges.
    """
    empty = CLIPTokenizer(vocab=canonical_vocab([]), merges=[], model_max_length=model_max_length)
    # Registered up front, end-of-word symbols get fixed ids in the trainer. Otherwise their ids follow a hash
    # map's order, and merges of equal count (to+m</w>, to+p</w>) come out in another order each run.
    end_of_word = [symbol + "</w>" for symbol in sorted(pre_tokenizers.ByteLevel.alphabet())]
    trained = empty.train_new_from_iterator(
        shapes_corpus(), vocab_size, new_special_tokens=end_of_word, show_progress=False
    )
    merges = [tuple(pair) for pair in json.loads(trained.backend_tokenizer.to_str())["model"]["merges"]]
    tokenizer = CLIPTokenizer(vocab=canonical_vocab(merges), merges=merges, model_max_length=model_max_length)
    pieces = {word for word in " ".join(shapes_corpus()).split() if len(tokenizer.tokenize(word)) > 1}
    if pieces:
        raise ValueError(f"a vocabulary of {vocab_size} is too small for the world's words: {sorted(pieces)}")
    return tokenizer


def shape_texts(shape: Shape) -> list[str]:
    where = WHERE[shape.position]
    return [t.format(colour=shape.colour, kind=shape.kind, size=shape.size, where=where) for t in SHAPE_TEMPLATES]


def descriptions(scene: Scene) -> tuple[str, ...]:
    """Every training text true of ``scene``: its caption first, then those of each of its shapes."""
    return tuple(dict.fromkeys([scene.caption(), *(text for shape in scene.shapes for text in shape_texts(shape))]))


def processor_for(config: TrainingConfig, tokenizer: CLIPTokenizer) -> CLIPProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def model_for(config: TrainingConfig, tokenizer: CLIPTokenizer) -> CLIPModel:
    clip_config = CLIPConfig(
        text_config={
            "hidden_size": config.text_hidden,
            "intermediate_size": 4 * config.text_hidden,
            "num_attention_heads": config.heads,
            "num_hidden_layers": config.text_layers,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": config.vision_hidden,
            "intermediate_size": 4 * config.vision_hidden,
            "num_attention_heads": config.heads,
            "num_hidden_layers": config.vision_layers,
            "image_size": config.image_size,
            "patch_size": config.patch_size,
        },
        projection_dim=config.projection_dim,
    )
    return CLIPModel(clip_config)


def contrastive_loss(logits_per_image: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, with every true text of an image as a target, not only its own.

    Short texts repeat within a batch ("a photo of a star" for two star images): one-hot targets would
    teach the model that one of two identical texts is wrong.
    """
    targets = positives.float()
    image_to_text = F.cross_entropy(logits_per_image, targets / targets.sum(dim=1, keepdim=True))
    text_to_image = F.cross_entropy(logits_per_image.t(), targets.t() / targets.sum(dim=0).unsqueeze(1))
    return (image_to_text + text_to_image) / 2


def training_set(config: TrainingConfig, processor: CLIPProcessor) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """Pixel values of the training images (preprocessed once, as served) and the texts true of each."""
    scenes = make_scenes("train", config.train_images, config.seed)
    images = [render(scene, config.image_size) for scene in scenes]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return pixels, [descriptions(scene) for scene in scenes]


def train(model: CLIPModel, processor: CLIPProcessor, config: TrainingConfig, progress: bool = True) -> list[float]:
    """Trains ``model`` in place on the world's training split; returns the loss of every step."""
    pixels, truths = training_set(config, processor)
    rng = np.random.default_rng(config.seed)  # text choice and batch order
    optimiser = adamw([(model, 1.0)], config.learning_rate, config.weight_decay)
    schedule = scheduled(optimiser, config.warmup_steps, config.steps)
    losses = []
    model.train()
    schedule_batches = itertools.islice(batches(len(truths), config.batch_size, rng), config.steps)
    bar = tqdm(schedule_batches, total=config.steps, desc="training shapes CLIP", disable=not progress)
    for batch in bar:
        texts = [pick_text(truths[i], rng) for i in batch]
        positives = torch.tensor([[text in truths[i] for text in texts] for i in batch])
        tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
        logits = model(pixel_values=pixels[batch], **tokens).logits_per_image
        loss = contrastive_loss(logits, positives)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as CLIP: a temperature below 1/100 destabilises training
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def pick_text(truths: tuple[str, ...], rng: np.random.Generator) -> str:
    """The caption (first) with probability ``CAPTION_SHARE``, else one of the single-shape texts."""
    if rng.random() < CAPTION_SHARE:
        return truths[0]
    return truths[1 + int(rng.integers(len(truths) - 1))]


def train_clip(out: Path, config: TrainingConfig = SHAPES_CLIP, progress: bool = True) -> Path:
    """Trains a CLIP on the shapes world and saves it to ``out``, with ``training_log.json`` written last."""
    start = time.perf_counter()
    with deterministic(config.threads, config.seed):
        tokenizer = train_tokenizer(config.tokenizer_vocab_size)
        processor = processor_for(config, tokenizer)
        model = model_for(config, tokenizer)
        losses = train(model, processor, config, progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG_NAME).unlink(missing_ok=True)  # until the new one is written, the folder is unfinished
    model.save_pretrained(out)
    processor.save_pretrained(out)
    log = {
        "fingerprint": config.fingerprint(),
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
        "losses": [round(loss, 5) for loss in losses],
    }
    (out / LOG_NAME).write_text(json.dumps(log, indent=1) + "\n")
    return out


class Fingerprinted(Protocol):
    def fingerprint(self) -> str: ...


def read_fingerprint(out: Path) -> str | None:
    """The fingerprint in ``out``'s training log, or None when the folder holds no finished training."""
    log = out / LOG_NAME
    if not (log.is_file() and (out / "model.safetensors").is_file()):
        return None
    return json.loads(log.read_text()).get("fingerprint")


def is_finished(out: Path, config: Fingerprinted) -> bool:
    """Whether ``out`` holds a complete checkpoint that ``config`` trained."""
    return read_fingerprint(out) == config.fingerprint()


@dataclass(frozen=True)
class ShapesClipPreset:
    name: str
    config: TrainingConfig = SHAPES_CLIP

    def build(self, out: Path) -> Path:
        """Trains, unless ``out`` already holds this preset's finished checkpoint (same config and seed)."""
        return out if is_finished(out, self.config) else train_clip(out, self.config)


SHAPES_CLIP_PRESET = ShapesClipPreset("shapes-clip")
