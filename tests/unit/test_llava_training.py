"""A short schedule trains a loadable, reproducible shapes LLaVA the way LLaVA is trained; the preset reuses it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoProcessor, CLIPModel, LlavaForConditionalGeneration

from checkpoints import llava_training
from checkpoints.clip_training import train_clip
from checkpoints.llava_training import (
    IGNORED,
    LOG_NAME,
    SHAPES_LLAVA,
    ExampleBuilder,
    LlavaTrainingConfig,
    ShapesLlavaPreset,
    collate,
    conversations,
    image_features,
    instruction_conversations,
    run_stage,
    sequence_loss,
    short_schedule,
    train_llava,
)
from checkpoints.presets import PRESETS
from checkpoints.shapes_world import CAPTION_REQUEST, make_scenes, render
from client.prompts import user_turn
from serving.generation.prompt import prompt_ids

SHORT = short_schedule(steps=12)


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_clip(tmp_path_factory.mktemp("shapes") / "shapes-clip", SHORT.clip, progress=False)


@pytest.fixture(scope="module")
def checkpoints(clip_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The short schedule, trained twice from the same seed on the same vision tower."""
    folder = tmp_path_factory.mktemp("shapes-llava")
    return tuple(train_llava(folder / name, clip_checkpoint, SHORT, progress=False) for name in ("first", "second"))


@pytest.fixture(scope="module")
def trained(checkpoints: tuple[Path, Path]) -> tuple[LlavaForConditionalGeneration, Any]:
    model = LlavaForConditionalGeneration.from_pretrained(checkpoints[0]).eval()
    return model, AutoProcessor.from_pretrained(checkpoints[0])


def _log(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / LOG_NAME).read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_twice_from_one_seed_gives_identical_weights_and_tokenizer(checkpoints: tuple[Path, Path]) -> None:
    first, second = checkpoints
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert _sha256(first / name) == _sha256(second / name), name


def test_the_log_has_every_stage_s_losses_the_config_and_the_vision_tower_s_fingerprint(
    checkpoints: tuple[Path, Path],
) -> None:
    log = _log(checkpoints[0])
    assert {stage: len(losses) for stage, losses in log["losses"].items()} == {
        "language": SHORT.language.steps,
        "alignment": SHORT.alignment.steps,
        "instruction": SHORT.instruction.steps,
    }
    assert log["config"] == json.loads(json.dumps(dataclasses.asdict(SHORT)))
    assert log["fingerprint"] == SHORT.fingerprint() != SHAPES_LLAVA.fingerprint()
    assert log["vision_tower"] == SHORT.clip.fingerprint()


def test_language_pre_training_lowers_the_loss(checkpoints: tuple[Path, Path]) -> None:
    losses = _log(checkpoints[0])["losses"]["language"]
    assert sum(losses[-3:]) < sum(losses[:3])


def test_the_checkpoint_is_a_llava_hf_checkpoint_with_the_clip_tower_unchanged(
    trained: tuple[LlavaForConditionalGeneration, Any], clip_checkpoint: Path
) -> None:
    model, processor = trained
    assert type(processor).__name__ == "LlavaProcessor" and processor.chat_template
    assert model.config.image_seq_length == (SHORT.clip.image_size // SHORT.clip.patch_size) ** 2
    clip = CLIPModel.from_pretrained(clip_checkpoint)
    for name, weight in clip.vision_model.state_dict().items():
        assert torch.equal(model.model.vision_tower.state_dict()[name], weight), name


def test_the_checkpoint_names_the_clip_tower_s_weights_as_llava_hf_does(
    checkpoints: tuple[Path, Path], clip_checkpoint: Path
) -> None:
    """CLIP's "vision_model.*" become "vision_tower.vision_model.*", the names vLLM loads, with the same values."""
    with (
        safe_open(str(clip_checkpoint / "model.safetensors"), framework="pt") as clip,
        safe_open(str(checkpoints[0] / "model.safetensors"), framework="pt") as llava,
    ):
        vision = {key for key in llava.keys() if key.startswith("vision_tower.")}  # noqa: SIM118
        tower = {f"vision_tower.{key}" for key in clip.keys() if key.startswith("vision_model.")}  # noqa: SIM118
        assert vision == tower
        for key in tower:
            assert torch.equal(llava.get_tensor(key), clip.get_tensor(key.removeprefix("vision_tower."))), key
        assert {key.split(".")[0] for key in llava.keys()} == {  # noqa: SIM118
            "vision_tower",
            "multi_modal_projector",
            "language_model",
        }


def test_training_prompts_are_the_served_decoder_s_prompts_and_only_answers_carry_loss(
    trained: tuple[LlavaForConditionalGeneration, Any],
) -> None:
    model, processor = trained
    tokenizer, tokens = processor.tokenizer, model.config.image_seq_length
    builder = ExampleBuilder(tokenizer, tokens)

    def served(messages: list[dict]) -> list[int]:
        """The served prompt as the model sees it: vLLM expands each image token into the image's tokens."""
        ids = prompt_ids(tokenizer, messages)
        return [t for i in ids for t in ([i] * tokens if i == model.config.image_token_id else [i])]

    turns = [("how many shapes are there?", "two"), ("what colour is the star?", "red")]
    example = builder.conversation(3, turns)
    history = [
        *user_turn(turns[0][0]),
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": turns[1][0]},
    ]
    served_first, served_second = served(user_turn(turns[0][0])), served(history)
    two, red = (
        tokenizer(word, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for word in ("two", "red")
    )
    assert example.ids == served_first + two + served_second[len(served_first) + len(two) :] + red
    assert served_second[: len(served_first) + len(two)] == served_first + two and example.image == 3
    answered = [label for label in example.labels if label != IGNORED]
    assert answered == two + red and len(example.labels) == len(example.ids)
    text_only = builder.text_only(CAPTION_REQUEST, "a small red circle at the top")
    assert model.config.image_token_id not in text_only.ids and text_only.labels[1:] == text_only.ids[1:]


def test_the_training_loss_is_hugging_face_s_labels_loss(trained: tuple[LlavaForConditionalGeneration, Any]) -> None:
    model, processor = trained
    scenes = make_scenes("train", 4, seed=2)
    builder = ExampleBuilder(processor.tokenizer, model.config.image_seq_length)
    batch = collate(
        [builder.conversation(i, conversations(s)) for i, s in enumerate(scenes)], processor.tokenizer.pad_token_id
    )
    pixels = processor.image_processor(images=[render(s, SHORT.clip.image_size) for s in scenes], return_tensors="pt")
    with torch.no_grad():
        loss = sequence_loss(model, batch, image_features(model, pixels["pixel_values"]), model.config.image_token_id)
        reference = model(
            input_ids=batch["ids"],
            pixel_values=pixels["pixel_values"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).loss
    assert torch.allclose(loss, reference, atol=1e-5), (loss, reference)


def test_a_batch_is_right_padded_and_padding_carries_no_loss() -> None:
    short, long = llava_training.Example([1, 5, 6], [IGNORED, 5, 6], 0), llava_training.Example([1, 7], [IGNORED, 7], 1)
    batch = collate([short, long], pad_id=9)
    assert batch["ids"].tolist() == [[1, 5, 6], [1, 7, 9]]
    assert batch["labels"].tolist() == [[IGNORED, 5, 6], [IGNORED, 7, IGNORED]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]] and batch["images"].tolist() == [0, 1]


def test_a_stage_trains_only_the_modules_it_is_given(trained: tuple[LlavaForConditionalGeneration, Any]) -> None:
    model, processor = trained
    model = LlavaForConditionalGeneration(model.config)
    scenes = make_scenes("train", SHORT.batch_size, seed=1)
    builder = ExampleBuilder(processor.tokenizer, model.config.image_seq_length)
    examples = [builder.conversation(i, [(CAPTION_REQUEST, s.caption())]) for i, s in enumerate(scenes)]
    pixels = processor.image_processor(images=[render(s, SHORT.clip.image_size) for s in scenes], return_tensors="pt")
    features = image_features(model, pixels["pixel_values"])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    stage = llava_training.Stage(steps=2, learning_rate=1e-2, warmup_steps=0)
    projector = model.model.multi_modal_projector
    run_stage("alignment", stage, model, [(projector, 1.0)], examples, features, SHORT, processor.tokenizer, False)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith("model.multi_modal_projector.") for name in changed)


def test_every_scene_is_asked_for_its_caption_and_its_questions() -> None:
    scene = make_scenes("train", 1, seed=0)[0]
    turns = conversations(scene)
    assert turns[0] == (CAPTION_REQUEST, scene.caption())
    assert turns[1:] == [(qa.question, qa.answer) for qa in scene.questions()]


def test_instruction_conversations_ask_each_turn_alone_and_a_follow_up_that_needs_looking() -> None:
    rng = np.random.default_rng(0)
    for scene in make_scenes("train", 60, seed=3):
        *alone, follow_up = instruction_conversations(scene, CAPTION_REQUEST, rng)
        assert [conversation[0] for conversation in alone] == conversations(scene)
        assert [len(conversation) for conversation in alone] == [1] * len(alone)
        (first, first_answer), (second, second_answer) = follow_up
        assert {first, second} <= {request for request, _ in conversations(scene)}
        assert first.split()[:2] != second.split()[:2]  # two types: nothing to eliminate
        assert second_answer not in f"{first} {first_answer}".replace("?", "").split()  # nothing to copy


def test_a_vision_tower_from_another_recipe_is_refused(clip_checkpoint: Path, tmp_path: Path) -> None:
    other = dataclasses.replace(SHORT, clip=dataclasses.replace(SHORT.clip, seed=7))
    with pytest.raises(ValueError, match="vision tower"):
        train_llava(tmp_path / "llava", clip_checkpoint, other, progress=False)


def test_the_preset_reuses_finished_checkpoints(
    checkpoints: tuple[Path, Path], clip_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_training(*args: object, **kwargs: object) -> Path:
        raise AssertionError("retrained")

    monkeypatch.setattr(llava_training, "train_llava", no_training)
    monkeypatch.setattr(llava_training.clip_training, "train_clip", no_training)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "shapes-clip").symlink_to(clip_checkpoint)
    (folder / "shapes-llava").symlink_to(checkpoints[0])
    assert ShapesLlavaPreset("short", SHORT).build(folder / "shapes-llava") == folder / "shapes-llava"


def test_the_preset_trains_its_vision_tower_beside_it_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(llava_training.clip_training, "train_clip", lambda out, config: calls.append(out.name) or out)
    monkeypatch.setattr(llava_training, "train_llava", lambda out, clip, config: calls.append(clip.name) or out)
    ShapesLlavaPreset("short", SHORT).build(tmp_path / "shapes-llava")
    assert calls == ["shapes-clip", "shapes-clip"]


def test_shapes_llava_is_a_registered_preset_with_the_full_schedule() -> None:
    preset = PRESETS["shapes-llava"]
    assert isinstance(preset, ShapesLlavaPreset) and preset.config == SHAPES_LLAVA
    assert isinstance(preset.config, LlavaTrainingConfig)


def test_a_config_that_cannot_train_is_refused() -> None:
    with pytest.raises(ValueError, match="batch"):
        dataclasses.replace(SHAPES_LLAVA, batch_size=SHAPES_LLAVA.train_images + 1)
    with pytest.raises(ValueError, match="warm-up"):
        llava_training.Stage(steps=5, learning_rate=1e-3, warmup_steps=5)
