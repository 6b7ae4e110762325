"""The Triton models behind the client's tasks, by the names a repository serves them under.

``vlm-export model --name NAME`` prefixes a checkpoint's Triton models with its name: a dual encoder named ``NAME``
answers ``NAME_image_embed``, ``NAME_text_embed`` and ``NAME_rank``; a VLM named ``NAME`` answers ``NAME`` (image
turns) and ``NAME_decoder`` (text-only turns, cancellations). The defaults are the families' own names, ``clip``
and ``llava``.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.generation import IMAGE_MODEL, TEXT_MODEL

DEFAULT_EMBEDDING_MODEL = "clip"
DEFAULT_CHAT_MODEL = IMAGE_MODEL


@dataclass(frozen=True)
class ModelNames:
    image_embed: str = "clip_image_embed"
    text_embed: str = "clip_text_embed"
    rank: str = "clip_rank"
    llava: str = IMAGE_MODEL
    decoder: str = TEXT_MODEL

    @classmethod
    def of(cls, embedding_model: str = DEFAULT_EMBEDDING_MODEL, chat_model: str = DEFAULT_CHAT_MODEL) -> ModelNames:
        """The Triton models of the dual encoder named ``embedding_model`` and the VLM named ``chat_model``."""
        return cls(
            image_embed=f"{embedding_model}_image_embed",
            text_embed=f"{embedding_model}_text_embed",
            rank=f"{embedding_model}_rank",
            llava=chat_model,
            decoder=f"{chat_model}_decoder",
        )
