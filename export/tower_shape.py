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

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden size {self.hidden} must be divisible by {self.heads} heads")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"{self.heads} query heads must be divisible by {self.kv_heads} key/value heads")
