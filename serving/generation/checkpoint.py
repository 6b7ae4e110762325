"""What the decoder reads from a LLaVA checkpoint: the language model alone, the tokenizer, and the numbers
(image tokens per image, context length, EOS ids) the prompt rules need.

Only the language model's weights are loaded (the vision tower and projector are served as ONNX), by
mapping the checkpoint's key prefixes onto a plain causal LM; both the ``llava-hf`` hub layout
(``language_model.model.*``) and transformers 5's (``model.language_model.*``) are understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from serving.generation.packed_linear import can_prepack, prepack_linear_layers

LANGUAGE_MODEL_KEYS = {
    r"^language_model\.model\.": "model.",
    r"^language_model\.lm_head\.": "lm_head.",
    r"^model\.language_model\.": "model.",
}


def image_tokens_per_image(config: Any) -> int:
    """Patches of the vision tower, plus CLS when the checkpoint keeps it (``"full"`` feature selection)."""
    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    return patches + (1 if config.vision_feature_select_strategy == "full" else 0)


@dataclass(frozen=True)
class DecoderCheckpoint:
    image_token_id: int
    image_tokens_per_image: int
    text_hidden: int
    context_length: int
    eos_token_ids: tuple[int, ...]


def read_checkpoint(folder: Path, tokenizer: Any) -> DecoderCheckpoint:
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(folder)
    eos: Any = None
    if (folder / "generation_config.json").is_file():
        eos = GenerationConfig.from_pretrained(folder).eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return DecoderCheckpoint(
        image_token_id=config.image_token_id,
        image_tokens_per_image=image_tokens_per_image(config),
        text_hidden=config.text_config.hidden_size,
        context_length=config.text_config.max_position_embeddings,
        eos_token_ids=tuple(eos) if isinstance(eos, list | tuple) else (int(eos),),
    )


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: float32 on CPU (exact parity with the reference), bfloat16 on CUDA."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"dtype must be auto or one of {', '.join(dtypes)}, got {name!r}")
    return dtypes[name]


def load_language_model(folder: Path, dtype: torch.dtype, device: torch.device) -> Any:
    """The checkpoint's causal LM for inference; in float32 on CPU its linears are prepacked
    (``serving.generation.packed_linear``)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    text_config = AutoConfig.from_pretrained(folder).text_config
    hf_logging.set_verbosity_error()  # the vision weights are skipped on purpose: no load report
    hf_logging.disable_progress_bar()
    model, loading = AutoModelForCausalLM.from_pretrained(
        folder, config=text_config, key_mapping=LANGUAGE_MODEL_KEYS, dtype=dtype, output_loading_info=True
    )
    require_all_weights(loading, "language model")
    model = model.to(device).eval()
    if can_prepack(model):  # float32 on CPU: decode steps' linears run on oneDNN-reordered weights
        prepack_linear_layers(model)
    return model


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
