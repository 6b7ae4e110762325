"""The size of one transformer tower (a vision or text encoder, a language model), shared by the presets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TowerShape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    kv_heads: int | None = None  # grouped-query attention; None: one key/value head per query head
    # Each head's size; None: hidden / heads. A Llama may have heads wider than that (Mistral-NeMo: 32 of 128 at
    # hidden 5120): its query/key/value projections are then heads * head_dim wide. Language models only.
    head_dim: int | None = None

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden size {self.hidden} must be divisible by {self.heads} heads")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"{self.heads} query heads must be divisible by {self.kv_heads} key/value heads")

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def sizes(self) -> dict[str, int]:
        """The shape under the names every Hugging Face transformer config gives it."""
        return {
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
        }

    def vision_config(self, image_size: int, patch_size: int) -> dict[str, int]:
        """A ViT vision tower's config (CLIP's, SigLIP's, LLaVA's) for square images cut into square patches."""
        return {**self.sizes(), "image_size": image_size, "patch_size": patch_size}

    def text_config(self, vocab_size: int, context_length: int) -> dict[str, int]:
        """A text tower's or language model's config, less its special tokens, which each family picks."""
        return {**self.sizes(), "vocab_size": vocab_size, "max_position_embeddings": context_length}
