"""What the CLIP and SigLIP presets share: a vision and a text tower trained apart into one embedding space, a
tokenizer trained here, and the checks that their sizes fit together."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from checkpoints.tower_shape import TowerShape


# Keyword-only, so each family can add fields without defaults (CLIP's projection_dim) and its own defaults.
@dataclass(frozen=True, kw_only=True)
class DualEncoderPreset:
    name: str
    image_size: int
    patch_size: int
    vision: TowerShape
    text: TowerShape
    vocab_size: int
    tokenizer_vocab_size: int
    context_length: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"{self.name}: image size must be a multiple of the patch size")
        if self.tokenizer_vocab_size > self.vocab_size:
            raise ValueError(f"{self.name}: the tokenizer cannot have more tokens than the model's vocabulary")

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """The trained tokenizer's added tokens may take it past ``tokenizer_vocab_size``: it must still fit."""
        if len(tokenizer) > self.vocab_size:
            raise ValueError(f"{self.name}: the tokenizer has {len(tokenizer)} tokens, the model {self.vocab_size}")

    def text_config(self, tokenizer: PreTrainedTokenizerBase, bos_token_id: int | None) -> dict[str, int | None]:
        """The text tower's config; ``bos_token_id`` is given apart, as SigLIP's tokenizer has no start token."""
        return {
            **self.text.text_config(self.vocab_size, self.context_length),
            "bos_token_id": bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }

    def vision_config(self) -> dict[str, int]:
        return self.vision.vision_config(self.image_size, self.patch_size)
