"""The served models' names, for a deployment that serves them under other names."""

from __future__ import annotations

from dataclasses import dataclass

from client.generation import IMAGE_MODEL, TEXT_MODEL


@dataclass(frozen=True)
class ModelNames:
    image_embed: str = "clip_image_embed"
    text_embed: str = "clip_text_embed"
    rank: str = "clip_rank"
    llava: str = IMAGE_MODEL
    decoder: str = TEXT_MODEL
