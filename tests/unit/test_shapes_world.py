"""The shapes world is deterministic, its splits are disjoint, and its texts say what its pictures show."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from checkpoints.shapes_world import (
    COLOURS,
    KINDS,
    NUMBERS,
    POSITIONS,
    Scene,
    Shape,
    colour_prompts,
    make_dataset,
    make_scenes,
    render,
    shape_prompts,
)


def _pixels(scene: Scene, image_size: int = 64) -> np.ndarray:
    return np.asarray(render(scene, image_size)).astype(int)


def test_the_same_seed_gives_the_same_scenes_and_pixels() -> None:
    first, second = make_dataset("train", 20, seed=3), make_dataset("train", 20, seed=3)
    assert [s.scene for s in first] == [s.scene for s in second]
    assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(first, second, strict=True))


def test_another_seed_gives_other_scenes() -> None:
    assert make_scenes("train", 20, seed=0) != make_scenes("train", 20, seed=1)


def test_a_longer_dataset_extends_a_shorter_one() -> None:
    assert make_scenes("held-out", 30, seed=0)[:10] == make_scenes("held-out", 10, seed=0)


def test_no_held_out_layout_is_a_training_layout() -> None:
    train = make_scenes("train", 3000, seed=0, shape_counts=(1,))
    held_out = make_scenes("held-out", 300, seed=0, shape_counts=(1,))
    assert {s.split for s in train} == {"train"} and {s.split for s in held_out} == {"held-out"}
    assert not {s.layout for s in train} & {s.layout for s in held_out}


def test_the_held_out_single_shapes_show_every_colour_and_kind() -> None:
    held_out = make_scenes("held-out", 300, seed=0, shape_counts=(1,))
    assert {s.shapes[0].colour for s in held_out} == set(COLOURS)
    assert {s.shapes[0].kind for s in held_out} == set(KINDS)


def test_an_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="held-out"):
        make_scenes("test", 1, seed=0)  # type: ignore[arg-type]


def test_captions_name_each_shape_its_size_and_where_it_is() -> None:
    star = Shape("star", "green", "large", "left")
    assert Scene((star,)).caption() == "a large green star on the left"
    circle, square = Shape("circle", "red", "small", "top"), Shape("square", "blue", "large", "bottom")
    assert Scene((circle, square)).caption() == "a small red circle above a large blue square"
    cross = Shape("cross", "white", "small", "right")
    assert Scene((square, cross, star)).caption() == (
        "a large blue square below a small white cross and a large green star on the left"
    )


def test_the_answers_agree_with_the_scene() -> None:
    for sample in make_dataset("train", 50, seed=0):
        shapes = sample.scene.shapes
        answers = {qa.question: qa.answer for qa in sample.questions}
        assert answers.pop("how many shapes are there?") == NUMBERS[len(shapes) - 1]
        for shape in shapes:
            assert answers.pop(f"what colour is the {shape.kind}?") == shape.colour
            assert answers.pop(f"what shape is {shape.colour}?") == shape.kind
            assert answers.pop(f"where is the {shape.kind}?") == shape.position
        assert not answers


def test_every_answer_is_one_lower_case_word() -> None:
    answers = {qa.answer for sample in make_dataset("train", 50, seed=0) for qa in sample.questions}
    assert answers and all(answer.isalpha() and answer.islower() for answer in answers)


def test_the_picture_has_each_shapes_colour_at_its_centre_on_a_grey_background() -> None:
    for sample in make_dataset("train", 50, seed=0):
        pixels = np.asarray(sample.image).astype(int)
        for shape in sample.scene.shapes:
            x, y = (int(c) for c in shape.centre(sample.image.width))
            assert tuple(pixels[y, x]) == COLOURS[shape.colour], sample.caption
        corner = pixels[0, 0]  # no position is a corner
        assert max(corner) - min(corner) == 0  # grey: the texture never tints
        assert all(np.abs(corner - colour).sum() > 90 for colour in COLOURS.values())


def test_the_colours_are_far_apart() -> None:
    for a, b in itertools.combinations(COLOURS.values(), 2):
        assert np.linalg.norm(np.subtract(a, b)) > 90, (a, b)


@pytest.mark.parametrize("position", list(POSITIONS))
def test_a_large_shape_pushed_to_its_cells_edge_stays_in_its_cell(position: str) -> None:
    shape = Shape("square", "red", "large", position, offset=(0.06, -0.06))
    changed = np.argwhere((_pixels(Scene((shape,))) != 128).any(axis=2))
    column, row = POSITIONS[position]
    cell = 64 / 3
    assert (changed[:, 1] >= column * cell).all() and (changed[:, 1] < (column + 1) * cell).all()
    assert (changed[:, 0] >= row * cell).all() and (changed[:, 0] < (row + 1) * cell).all()


def test_every_kind_has_its_own_silhouette_even_when_small() -> None:
    silhouettes = {kind: _pixels(Scene((Shape(kind, "black", "small", "centre"),))) < 64 for kind in KINDS}
    for a, b in itertools.combinations(KINDS, 2):
        assert (silhouettes[a] != silhouettes[b]).sum() >= 10, (a, b)


@pytest.mark.parametrize(
    "shapes",
    [
        (),
        (Shape("star", "red", "small", "left"), Shape("circle", "red", "small", "right")),
        (Shape("star", "red", "small", "left"), Shape("star", "blue", "small", "right")),
        (Shape("star", "red", "small", "left"), Shape("circle", "blue", "small", "left")),
    ],
)
def test_a_scene_whose_questions_would_be_ambiguous_is_refused(shapes: tuple[Shape, ...]) -> None:
    with pytest.raises(ValueError):
        Scene(shapes)


@pytest.mark.parametrize(
    "arguments",
    [("hexagon", "red", "small", "left"), ("star", "teal", "small", "left"), ("star", "red", "small", "corner")],
)
def test_a_shape_outside_the_world_is_refused(arguments: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError, match="is not one of"):
        Shape(*arguments)


def test_a_shape_cannot_be_pushed_out_of_its_cell() -> None:
    with pytest.raises(ValueError, match="leaves the shape's cell"):
        Shape("star", "red", "small", "left", offset=(0.2, 0.0))


def test_the_zero_shot_prompts_name_every_colour_and_kind() -> None:
    assert colour_prompts()[0] == "a photo of a red shape" and len(colour_prompts()) == len(COLOURS)
    assert shape_prompts()[0] == "a photo of a circle" and len(shape_prompts()) == len(KINDS)
