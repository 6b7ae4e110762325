"""A synthetic world of coloured shapes: scenes, their pictures, captions and question/answer pairs.

Pure numpy and PIL and deterministic from a seed, so demo checkpoints can be trained and scored without
downloads. Answers are single words so that exact match is a fair score.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle", "star", "diamond", "cross")
# Saturated or extreme values: far from each other and from the grey backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 20, 20),
    "green": (20, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (245, 215, 0),
    "purple": (140, 30, 180),
    "orange": (240, 120, 0),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
SIZES = ("small", "large")
# (column, row) on a 3x3 grid: a plus pattern, so every position is one word.
POSITIONS: dict[str, tuple[int, int]] = {
    "top": (1, 0),
    "left": (0, 1),
    "centre": (1, 1),
    "right": (2, 1),
    "bottom": (1, 2),
}
WHERE = {
    "top": "at the top",
    "left": "on the left",
    "centre": "in the centre",
    "right": "on the right",
    "bottom": "at the bottom",
}
NUMBERS = ("one", "two", "three")

# What a VLM is asked for a caption.
CAPTION_REQUEST = "describe the image."
# Zero-shot prompts: one per colour and one per kind; the best-scoring prompt is the prediction.
COLOUR_PROMPT = "a photo of a {colour} shape"
SHAPE_PROMPT = "a photo of a {kind}"

Split = Literal["train", "held-out"]
SPLITS: tuple[Split, ...] = ("train", "held-out")
HELD_OUT_BUCKETS = 8  # one layout in eight is held out
BACKGROUND_LEVELS = (96, 160)  # grey levels, inclusive: mid-grey keeps white and black visible
MAX_NOISE = 12.0  # standard deviation of the background texture
MAX_OFFSET = 0.06  # jitter of a shape's centre within its cell, as a fraction of the cell
RADIUS = {"small": 0.26, "large": 0.42}  # as a fraction of the cell: with MAX_OFFSET, shapes stay in their cell
SUPERSAMPLE = 4  # shapes are drawn this much larger, then averaged down, for smooth edges


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: str
    position: str
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for value, allowed in (
            (self.kind, KINDS),
            (self.colour, COLOURS),
            (self.size, SIZES),
            (self.position, POSITIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        if max(abs(d) for d in self.offset) > MAX_OFFSET:
            raise ValueError(f"offset {self.offset} leaves the shape's cell (at most {MAX_OFFSET})")

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.kind}"

    def centre(self, image_size: int) -> tuple[float, float]:
        cell = image_size / 3
        column, row = POSITIONS[self.position]
        return (column + 0.5 + self.offset[0]) * cell, (row + 0.5 + self.offset[1]) * cell

    def radius(self, image_size: int) -> float:
        return RADIUS[self.size] * image_size / 3


@dataclass(frozen=True)
class QuestionAnswer:
    question: str
    answer: str

    def __post_init__(self) -> None:
        if not self.question.endswith("?"):
            raise ValueError(f"not a question: {self.question!r}")
        if not (self.answer.isalpha() and self.answer.islower()):
            raise ValueError(f"answers are single lower-case words, not {self.answer!r}")


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    background: int = 128
    noise: float = 0.0
    texture_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.shapes) <= len(NUMBERS):
            raise ValueError(f"a scene has one to {len(NUMBERS)} shapes, not {len(self.shapes)}")
        # Distinct kinds, colours and positions keep every question unambiguous.
        for attribute in ("kind", "colour", "position"):
            if len({getattr(shape, attribute) for shape in self.shapes}) < len(self.shapes):
                raise ValueError(f"two shapes share a {attribute}")
        if not BACKGROUND_LEVELS[0] <= self.background <= BACKGROUND_LEVELS[1]:
            raise ValueError(f"background {self.background} is outside {BACKGROUND_LEVELS}")
        if not 0 <= self.noise <= MAX_NOISE:
            raise ValueError(f"noise {self.noise} is outside [0, {MAX_NOISE}]")

    @property
    def layout(self) -> tuple[tuple[str, str, str, str], ...]:
        """What the split is decided on: the shapes' attributes, in no particular order, without jitter."""
        return tuple(sorted((s.kind, s.colour, s.size, s.position) for s in self.shapes))

    @property
    def split(self) -> Split:
        digest = hashlib.sha256(repr(self.layout).encode()).digest()
        return "held-out" if int.from_bytes(digest[:4], "big") % HELD_OUT_BUCKETS == 0 else "train"

    def caption(self) -> str:
        first, *others = self.shapes
        if not others:
            return f"a {first.phrase} {WHERE[first.position]}"
        caption = f"a {first.phrase} {relation(first, others[0])} a {others[0].phrase}"
        return caption + "".join(f" and a {s.phrase} {WHERE[s.position]}" for s in others[1:])

    def questions(self) -> tuple[QuestionAnswer, ...]:
        pairs = [QuestionAnswer("how many shapes are there?", NUMBERS[len(self.shapes) - 1])]
        for shape in self.shapes:
            pairs.append(QuestionAnswer(f"what colour is the {shape.kind}?", shape.colour))
            pairs.append(QuestionAnswer(f"what shape is {shape.colour}?", shape.kind))
            pairs.append(QuestionAnswer(f"where is the {shape.kind}?", shape.position))
        return tuple(pairs)


@dataclass(frozen=True)
class Sample:
    scene: Scene
    image: Image.Image = field(compare=False)
    caption: str
    questions: tuple[QuestionAnswer, ...]

    def __post_init__(self) -> None:
        if self.image.mode != "RGB" or self.image.width != self.image.height:
            raise ValueError(f"expected a square RGB image, got {self.image.mode} {self.image.size}")


def relation(shape: Shape, other: Shape) -> str:
    """Where ``shape`` is relative to ``other``: rows first, as people read "above" before "left of"."""
    (column, row), (other_column, other_row) = POSITIONS[shape.position], POSITIONS[other.position]
    if row != other_row:
        return "above" if row < other_row else "below"
    return "to the left of" if column < other_column else "to the right of"


def outline(kind: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon of a shape centred on (x, y) with outer radius r (circles are drawn as ellipses instead)."""
    if kind == "square":
        h = 0.8 * r  # about the circle's area
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if kind == "diamond":
        return [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    if kind == "triangle":
        return _polygon(x, y, [r] * 3)
    if kind == "star":
        return _polygon(x, y, [r, 0.45 * r] * 5)
    if kind == "cross":
        w = 0.35 * r  # half the arm's width
        corners = [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
        return [(x + dx, y + dy) for dx, dy in corners]
    raise ValueError(f"{kind!r} has no polygon")


def _polygon(x: float, y: float, radii: list[float]) -> list[tuple[float, float]]:
    """Vertices at the given radii, evenly spaced, the first pointing up."""
    step = 2 * math.pi / len(radii)
    return [(x + r * math.sin(i * step), y - r * math.cos(i * step)) for i, r in enumerate(radii)]


def render(scene: Scene, image_size: int = 64) -> Image.Image:
    rng = np.random.default_rng(scene.texture_seed)
    texture = scene.background + rng.normal(0.0, scene.noise, (image_size, image_size, 1))  # grey: hue stays clean
    image = Image.fromarray(np.clip(texture, 0, 255).round().astype(np.uint8).repeat(3, axis=2), "RGB")
    big = image_size * SUPERSAMPLE
    for shape in scene.shapes:
        mask = Image.new("L", (big, big), 0)
        x, y = (c * SUPERSAMPLE for c in shape.centre(image_size))
        r = shape.radius(image_size) * SUPERSAMPLE
        draw = ImageDraw.Draw(mask)
        if shape.kind == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        else:
            draw.polygon(outline(shape.kind, x, y, r), fill=255)
        image.paste(
            COLOURS[shape.colour], (0, 0, image_size, image_size), mask.resize(image.size, Image.Resampling.BOX)
        )
    return image


def random_scene(rng: np.random.Generator, shape_counts: tuple[int, ...] = (1, 2, 3)) -> Scene:
    count = int(rng.choice(shape_counts))
    kinds = rng.choice(KINDS, count, replace=False)
    colours = rng.choice(list(COLOURS), count, replace=False)
    positions = rng.choice(list(POSITIONS), count, replace=False)
    sizes = rng.choice(SIZES, count)
    offsets = rng.uniform(-MAX_OFFSET, MAX_OFFSET, (count, 2))
    shapes = tuple(
        Shape(str(k), str(c), str(s), str(p), (float(dx), float(dy)))
        for k, c, s, p, (dx, dy) in zip(kinds, colours, sizes, positions, offsets, strict=True)
    )
    plain = rng.random() < 0.5
    return Scene(
        shapes=shapes,
        background=int(rng.integers(BACKGROUND_LEVELS[0], BACKGROUND_LEVELS[1] + 1)),
        noise=0.0 if plain else float(rng.uniform(0.0, MAX_NOISE)),
        texture_seed=int(rng.integers(2**32)),
    )


def make_scenes(split: Split, count: int, seed: int, shape_counts: tuple[int, ...] = (1, 2, 3)) -> list[Scene]:
    """``count`` scenes of ``split``; scene i depends only on (seed, split, i), so a longer list extends a shorter.

    Each split has its own seed stream and keeps only the layouts that hash into it, so no held-out layout
    is ever a training layout, whatever the seeds and counts.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if not shape_counts or not set(shape_counts) <= {1, 2, 3}:
        raise ValueError(f"shape counts must be among 1, 2 and 3, not {shape_counts}")
    scenes = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        scene = random_scene(rng, shape_counts)
        while scene.split != split:
            scene = random_scene(rng, shape_counts)
        scenes.append(scene)
    return scenes


def make_dataset(
    split: Split, count: int, seed: int, image_size: int = 64, shape_counts: tuple[int, ...] = (1, 2, 3)
) -> list[Sample]:
    return [
        Sample(scene, render(scene, image_size), scene.caption(), scene.questions())
        for scene in make_scenes(split, count, seed, shape_counts)
    ]


def colour_prompts() -> list[str]:
    return [COLOUR_PROMPT.format(colour=colour) for colour in COLOURS]


def shape_prompts() -> list[str]:
    return [SHAPE_PROMPT.format(kind=kind) for kind in KINDS]
