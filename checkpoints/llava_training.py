"""Train a small LLaVA on the shapes world the way LLaVA-1.5 is trained, in minutes on two CPU cores.

LLaVA starts from a pre-trained language model; none can be downloaded here, so stage 0 pre-trains a small
Llama on the world's conversations as plain text. Then, as LLaVA does: stage 1 trains only the projector, on
captions (feature alignment); stage 2 trains the projector and the language model on instruction-style
question/answer turns, with the loss on the answer tokens only. The vision tower, ``shapes-clip``'s, stays
frozen throughout, so its image features are computed once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import CLIPModel, LlamaTokenizer, LlavaForConditionalGeneration

from checkpoints import clip_training
from checkpoints.clip_training import SHAPES_CLIP, TrainingConfig
from checkpoints.llava_preset import IMAGE_TOKEN, LlavaPreset
from checkpoints.shapes_world import CAPTION_REQUEST, Scene, make_scenes, render
from checkpoints.tokenizer_training import conversation_corpus
from checkpoints.tower_shape import TowerShape
from checkpoints.training_loop import adamw, batches, deterministic, scheduled
from client.prompts import CAPTION_STYLES, user_turn

LOG_NAME = clip_training.LOG_NAME
TRAINING_VERSION = 3  # bump when this code or the world changes what a config trains: old checkpoints are redone
# As LLaVA's alignment data, captions answer one of several instructions; the client's descriptive caption
# style is among them, so `vlm-client caption` works on this checkpoint.
CAPTION_REQUESTS = (
    CAPTION_REQUEST,
    "what is in the picture?",
    "describe the image briefly.",
    CAPTION_STYLES["descriptive"],
)
# Independent random streams drawn from the one seed.
SEED_STREAMS = {"conversations": 1, "language": 2, "alignment": 3, "instruction": 4}
IGNORED = -100  # label of tokens without loss (Hugging Face's convention)
# Sixteen query heads of 32 (four key/value heads) on a hidden size of 128. Heads of 32 are the smallest vLLM's CPU
# attention runs. Many heads are what finds a shape by its kind among several: "where is the star?" reached 96% with
# eight heads of 16 but 72% with four of 32 (56% in an earlier recipe) and 77-81% with eight of 32; sixteen reach
# 97-98% on seeds 0 and 1, for 1.75 times the compute of eight of 16 a step (hidden 256, eight heads: 3 times).
LANGUAGE_MODEL = TowerShape(hidden=128, layers=2, heads=16, intermediate=384, kv_heads=4, head_dim=32)


@dataclass(frozen=True)
class Stage:
    steps: int
    learning_rate: float
    warmup_steps: int

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError("warm-up must be shorter than the stage")


@dataclass(frozen=True)
class LlavaTrainingConfig:
    clip: TrainingConfig = SHAPES_CLIP  # the vision tower's recipe: its checkpoint must be this config's
    text: TowerShape = LANGUAGE_MODEL
    tokenizer_vocab_size: int = 1000
    context_length: int = 512
    vision_feature_layer: int = -2
    train_images: int = 4096
    batch_size: int = 96
    language: Stage = Stage(steps=150, learning_rate=3e-3, warmup_steps=15)
    alignment: Stage = Stage(steps=200, learning_rate=3e-3, warmup_steps=15)
    instruction: Stage = Stage(steps=1000, learning_rate=2e-3, warmup_steps=50)
    weight_decay: float = 0.0
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size > self.train_images:
            raise ValueError("a batch cannot be larger than the training set")

    def fingerprint(self) -> str:
        """Identifies what this config trains, the vision tower's recipe included: equal fingerprints, equal weights."""
        payload = json.dumps({"version": TRAINING_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def preset(self) -> LlavaPreset:
        """The architecture: shapes-clip's vision tower, this config's language model."""
        return LlavaPreset(
            name="shapes-llava",
            image_size=self.clip.image_size,
            patch_size=self.clip.patch_size,
            vision=TowerShape(
                self.clip.vision_hidden, self.clip.vision_layers, self.clip.heads, 4 * self.clip.vision_hidden
            ),
            text=self.text,
            context_length=self.context_length,
            tokenizer_vocab_size=self.tokenizer_vocab_size,
            vision_feature_layer=self.vision_feature_layer,
            # Hugging Face's 0.02 suits widths in the thousands; at 128 it starts attention almost uniform, and
            # with it no schedule tried here learnt to find a shape by its kind.
            initializer_range=self.text.hidden**-0.5,
            seed=self.seed,
        )


SHAPES_LLAVA = LlavaTrainingConfig()


def short_schedule(steps: int = 10) -> LlavaTrainingConfig:
    """Seconds of training of a smaller model on a short-schedule CLIP, for tests: same code path."""
    stage = Stage(steps=steps, learning_rate=2e-3, warmup_steps=1)
    return dataclasses.replace(
        SHAPES_LLAVA,
        clip=clip_training.short_schedule(),
        text=TowerShape(hidden=32, layers=1, heads=1, intermediate=64),  # one head of 32: vLLM's smallest
        train_images=128,
        batch_size=16,
        language=stage,
        alignment=stage,
        instruction=stage,
    )


Turn = tuple[str, str]  # (request, answer)


def conversations(scene: Scene, caption_request: str = CAPTION_REQUEST) -> list[Turn]:
    """(request, answer) turns true of ``scene``: its caption, then its questions."""
    return [(caption_request, scene.caption()), *((qa.question, qa.answer) for qa in scene.questions())]


def instruction_conversations(scene: Scene, caption_request: str, rng: np.random.Generator) -> list[list[Turn]]:
    """Each of the scene's turns as a conversation of its own, plus one follow-up: two questions in which the
    second answer can be had only by looking.

    Longer conversations let later answers be had without looking: copied from an earlier turn ("what shape is
    red?" -> "diamond", then "what colour is the diamond?") or by elimination (the colour not yet named). The
    model learned those and answered a first question about a shape's colour or place at chance. So a follow-up
    asks two questions of different types, the second's answer not a word of the first turn.
    """
    caption, *questions = conversations(scene, caption_request)

    def follows(first: Turn, second: Turn) -> bool:
        kind = first[0].split()[:2] != second[0].split()[:2]  # "what colour", "what shape", "where is", "how many"
        return kind and second[1] not in f"{first[0]} {first[1]}".replace("?", "").split()

    pairs = [[first, second] for first in questions for second in questions if follows(first, second)]
    return [[caption], *([question] for question in questions), pairs[rng.integers(len(pairs))]]


def tokenizer_corpus(scenes: Sequence[Scene]) -> list[str]:
    """The generic conversation corpus plus this world's turns, so its words are whole tokens."""
    turns = [turn for scene in scenes for turn in conversations(scene)]
    return conversation_corpus() + list(CAPTION_REQUESTS) + [f"USER: {q} ASSISTANT: {a}" for q, a in turns]


@dataclass(frozen=True)
class Example:
    """One training sequence: token ids, the labels the loss sees, and the image it shows (or -1)."""

    ids: list[int]
    labels: list[int]
    image: int


class ExampleBuilder:
    """Token sequences exactly as the served decoder builds prompts: chat template, expanded image tokens, BOS."""

    def __init__(self, tokenizer: LlamaTokenizer, image_seq_length: int) -> None:
        self.tokenizer = tokenizer
        self.image_seq_length = image_seq_length

    def prompt(self, messages: list[dict]) -> list[int]:
        """Prompt ids for ``messages``, ending in the assistant's cue, as the served decoder tokenizes them."""
        rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        expanded = rendered.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.image_seq_length)
        return list(self.tokenizer(expanded)["input_ids"])

    def answer(self, text: str) -> list[int]:
        """The answer's ids and the end of the turn, as the chat template renders an assistant turn."""
        return [*self.tokenizer(text, add_special_tokens=False)["input_ids"], self.tokenizer.eos_token_id]

    def text_only(self, request: str, answer: str) -> Example:
        """Language pre-training: the whole one-turn conversation is predicted."""
        ids = self.prompt([{"role": "user", "content": request}]) + self.answer(answer)
        return Example(ids, [IGNORED, *ids[1:]], -1)

    def conversation(self, image: int, turns: Sequence[tuple[str, str]]) -> Example:
        """Turns about one image (shown in the first): only the answers and the end of each are predicted.

        Each turn's prompt is the served rendering of the conversation so far, which must extend the previous
        turn's ids; so a history is tokenized in training exactly as a served multi-turn request tokenizes it.
        """
        messages: list[dict] = []
        ids: list[int] = []
        labels: list[int] = []
        for number, (request, answer) in enumerate(turns):
            messages += user_turn(request) if number == 0 else [{"role": "user", "content": request}]
            prompt = self.prompt(messages)
            if prompt[: len(ids)] != ids:
                raise ValueError("the chat template does not render a conversation as an extension of its start")
            reply = self.answer(answer)
            labels += [IGNORED] * (len(prompt) - len(ids)) + reply
            ids = prompt + reply
            messages.append({"role": "assistant", "content": answer})
        return Example(ids, labels, image)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and labels (padding carries no loss)."""
    length = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id)
    labels = torch.full((len(examples), length), IGNORED)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        ids[row, : len(example.ids)] = torch.tensor(example.ids)
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
        mask[row, : len(example.ids)] = 1
    return {"ids": ids, "labels": labels, "attention_mask": mask, "images": torch.tensor([e.image for e in examples])}


@torch.no_grad()
def image_features(model: LlavaForConditionalGeneration, pixels: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The frozen tower's selected layer, CLS dropped: [images, image tokens, vision hidden]."""
    layer = model.config.vision_feature_layer
    parts = []
    for start in range(0, len(pixels), chunk):
        hidden = model.model.vision_tower(pixels[start : start + chunk], output_hidden_states=True).hidden_states
        parts.append(hidden[layer][:, 1:])
    return torch.cat(parts)


def sequence_loss(
    model: LlavaForConditionalGeneration, batch: dict[str, torch.Tensor], features: torch.Tensor, image_token_id: int
) -> torch.Tensor:
    """Next-token loss with the projected image features spliced in at the image tokens, as the model does
    (the mean over scored tokens, as Hugging Face's ``labels`` loss)."""
    embeds = model.get_input_embeddings()(batch["ids"])
    placeholders = batch["ids"] == image_token_id
    if placeholders.any():
        projected = model.model.multi_modal_projector(features[batch["images"][batch["images"] >= 0]])
        embeds = embeds.masked_scatter(placeholders.unsqueeze(-1), projected.to(embeds.dtype))
    hidden = model.model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
    # Logits only where a next token is scored (the answers): the vocabulary projection is a quarter of the compute.
    targets = batch["labels"][:, 1:]
    scored = targets != IGNORED
    logits = model.lm_head(hidden[:, :-1][scored])
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored])


def run_stage(
    name: str,
    stage: Stage,
    model: LlavaForConditionalGeneration,
    trained: Sequence[tuple[torch.nn.Module, float]],
    examples: Sequence[Example],
    features: torch.Tensor,
    config: LlavaTrainingConfig,
    tokenizer: LlamaTokenizer,
    progress: bool,
) -> list[float]:
    """Trains only the ``trained`` (module, learning-rate scale) pairs on ``examples``; returns every step's loss."""
    model.requires_grad_(False)
    for module, _ in trained:
        module.requires_grad_(True)
    optimiser = adamw(trained, stage.learning_rate, config.weight_decay)
    schedule = scheduled(optimiser, stage.warmup_steps, stage.steps)
    rng = np.random.default_rng([config.seed, SEED_STREAMS[name]])  # the stage's batch order
    order = batches(len(examples), config.batch_size, rng)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    losses: list[float] = []
    model.train()
    bar = tqdm(range(stage.steps), desc=f"shapes LLaVA: {name}", disable=not progress)
    for _ in bar:
        batch = collate([examples[i] for i in next(order)], tokenizer.pad_token_id)
        loss = sequence_loss(model, batch, features, image_token_id)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def train_llava(
    out: Path, clip_checkpoint: Path, config: LlavaTrainingConfig = SHAPES_LLAVA, progress: bool = True
) -> Path:
    """Trains a LLaVA on the shapes world with ``clip_checkpoint``'s vision tower and saves it (llava-hf layout)."""
    if not clip_training.is_finished(clip_checkpoint, config.clip):
        raise ValueError("the vision tower's checkpoint was not trained by this config's CLIP recipe")
    start = time.perf_counter()
    preset = config.preset()
    with deterministic(config.threads, config.seed):
        scenes = make_scenes("train", config.train_images, config.seed)
        tokenizer = preset.tokenizer(tokenizer_corpus(scenes))
        model = preset.model(preset.config(tokenizer))
        clip = CLIPModel.from_pretrained(clip_checkpoint)
        model.model.vision_tower.load_state_dict(clip.vision_model.state_dict())
        image_processor = preset.processor(tokenizer).image_processor
        pixels = image_processor(images=[render(s, config.clip.image_size) for s in scenes], return_tensors="pt")
        features = image_features(model, pixels["pixel_values"])
        builder = ExampleBuilder(tokenizer, preset.image_seq_length)
        rng = np.random.default_rng([config.seed, SEED_STREAMS["conversations"]])  # caption requests, follow-ups
        requests = rng.choice(len(CAPTION_REQUESTS), len(scenes))
        turns = [conversations(scene, CAPTION_REQUESTS[r]) for scene, r in zip(scenes, requests, strict=True)]
        language = [builder.text_only(request, answer) for scene_turns in turns for request, answer in scene_turns]
        captions = [builder.conversation(index, scene_turns[:1]) for index, scene_turns in enumerate(turns)]
        instructions = [
            builder.conversation(index, conversation)
            for index, (scene, request) in enumerate(zip(scenes, requests, strict=True))
            for conversation in instruction_conversations(scene, CAPTION_REQUESTS[request], rng)
        ]
        projector = (model.model.multi_modal_projector, 1.0)
        language_model = [(model.model.language_model, 1.0), (model.lm_head, 1.0)]
        common = {"model": model, "features": features, "config": config, "tokenizer": tokenizer, "progress": progress}
        losses = {
            "language": run_stage("language", config.language, trained=language_model, examples=language, **common),
            "alignment": run_stage("alignment", config.alignment, trained=[projector], examples=captions, **common),
            "instruction": run_stage(
                "instruction",
                config.instruction,
                trained=[projector, *language_model],
                examples=instructions,
                **common,
            ),
        }
    model.requires_grad_(True)
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG_NAME).unlink(missing_ok=True)  # until the new one is written, the folder is unfinished
    preset.save(model, tokenizer, out)
    log = {
        "fingerprint": config.fingerprint(),
        "seed": config.seed,
        "config": dataclasses.asdict(config),
        "vision_tower": clip_training.read_fingerprint(clip_checkpoint),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
        "losses": {stage: [round(loss, 5) for loss in values] for stage, values in losses.items()},
    }
    (out / LOG_NAME).write_text(json.dumps(log, indent=1) + "\n")
    return out


@dataclass(frozen=True)
class ShapesLlavaPreset:
    name: str
    config: LlavaTrainingConfig = SHAPES_LLAVA

    def build(self, out: Path) -> Path:
        """Trains (or reuses) ``shapes-clip`` beside ``out``, then trains here unless ``out`` is already done."""
        clip_checkpoint = clip_training.ShapesClipPreset("shapes-clip", self.config.clip).build(
            out.parent / "shapes-clip"
        )
        return out if clip_training.is_finished(out, self.config) else train_llava(out, clip_checkpoint, self.config)


SHAPES_LLAVA_PRESET = ShapesLlavaPreset("shapes-llava")
