"""What the decoder reads from a LLaVA checkpoint besides vLLM: the tokenizer and the numbers (image tokens
per image, hidden size, context length) its prompt rules need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def image_tokens_per_image(config: Any) -> int:
    """Patches of the vision tower, plus CLS when the checkpoint keeps it (``"full"`` feature selection)."""
    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    return patches + (1 if config.vision_feature_select_strategy == "full" else 0)


@dataclass(frozen=True)
class DecoderCheckpoint:
    image_token_id: int
    image_tokens_per_image: int  # 0 where the count depends on the image's size (counted per request)
    text_hidden: int
    context_length: int
    vocab_size: int  # the language model's output rows (often more than the tokenizer's tokens)
    video_token_id: int | None = None  # a native-video checkpoint's video placeholder (Qwen2-VL's <|video_pad|>)


def read_checkpoint(folder: Path, fixed_image_tokens: bool = True) -> DecoderCheckpoint:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    return DecoderCheckpoint(
        image_token_id=config.image_token_id,
        image_tokens_per_image=image_tokens_per_image(config) if fixed_image_tokens else 0,
        text_hidden=config.text_config.hidden_size,
        context_length=config.text_config.max_position_embeddings,
        vocab_size=config.text_config.vocab_size,
        video_token_id=getattr(config, "video_token_id", None),
    )


def require_all_weights(loading: dict[str, Any], part: str) -> None:
    """Missing weights would be left at random values silently; a layout the key mapping misses must fail."""
    missing = sorted(loading.get("missing_keys", ()))
    if missing:
        raise ValueError(f"the checkpoint's {part} weights were not found (first missing: {missing[0]})")


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise ValueError("the checkpoint's tokenizer has no chat template")
    return tokenizer
