"""Export steps every dual encoder shares: both towers to ONNX, each checked against PyTorch (pixel noise; real
tokenised sentences padded as the family serves them), then the tokenizer, image processor and logit scale and bias
its python steps read. Everything is built in a staging folder first; the repository changes only when every parity
check passes, so a failed export never leaves a half-written or out-of-tolerance model to be served.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.components import export_encoder, install
from export.families.base import Feeds
from export.families.dual_encoder import PARITY_SENTENCES, DualEncoderModels
from export.parity import ParityReport
from serving.similarity import write_logit_scale
from serving.text_tokenizer import TOKENIZER_FILE
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR
from serving.triton_models.text_tokenize import TOKENIZER_DIR


@dataclass(frozen=True)
class DualEncoderSizes:
    """The checkpoint's values for the names the dual-encoder specs use."""

    image: Mapping[str, int]  # the vision inputs' named dims: image_size, or max_num_patches and patch_dim
    embed_dim: int
    context_length: int
    max_token_id: int
    pad_token_id: int

    def as_dict(self) -> dict[str, int]:
        return {
            **self.image,
            "embed_dim": self.embed_dim,
            "context_length": self.context_length,
            "max_token_id": self.max_token_id,
            "pad_token_id": self.pad_token_id,
        }


@dataclass(frozen=True)
class LoadedDualEncoder:
    """What a family's exporter reads off its checkpoint: the two towers as graphs to export (each ending in the
    L2-normalised embedding), the processor the server reproduces, the score's calibration, and the vision tower's
    parity inputs."""

    vision: torch.nn.Module
    text: torch.nn.Module
    processor: Any  # a transformers processor: .tokenizer and .image_processor
    sizes: DualEncoderSizes
    logit_scale: float  # the multiplier, exp(logit_scale) of the checkpoint
    logit_bias: float
    vision_feeds: Callable[[tuple[int, ...]], Feeds]  # batch sizes -> one feed each


def square_pixel_feeds(image_size: int) -> Callable[[tuple[int, ...]], Feeds]:
    """Noise images of the tower's square size (CLIP, SigLIP)."""

    def feeds(batch_sizes: tuple[int, ...]) -> Feeds:
        generator = np.random.default_rng(0)
        shape = (3, image_size, image_size)
        return [{"pixel_values": generator.standard_normal((n, *shape)).astype(np.float32)} for n in batch_sizes]

    return feeds


def token_feeds(tokenizer: Any, sizes: DualEncoderSizes, batch_sizes: tuple[int, ...], padding: str) -> Feeds:
    """Real tokenised sentences padded as served: to each batch's longest (batches of different lengths, up to the
    whole context, so each length of a dynamic axis is checked) or all to the context."""
    feeds = []
    for n in batch_sizes:
        texts = [PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(n)]
        encoded = tokenizer(
            texts, padding=padding, truncation=True, max_length=sizes.context_length, return_tensors="np"
        )
        feeds.append({k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    return feeds


def export_dual_encoder(
    models: DualEncoderModels,
    loaded: LoadedDualEncoder,
    repository: Path,
    opset: int,
    precision: str,
    qdq: str | None = None,
) -> list[ParityReport]:
    tokenizer = loaded.processor.tokenizer
    sizes = loaded.sizes
    padding = models.tokenize.parameters["padding"]
    with tempfile.TemporaryDirectory(prefix="vlm-export-") as scratch:
        staging = Path(scratch)
        tokenizer.save_pretrained(staging / models.tokenize.name / TOKENIZER_DIR)
        if not (staging / models.tokenize.name / TOKENIZER_DIR / TOKENIZER_FILE).is_file():
            # The served tokenizer runs the `tokenizers` library on tokenizer.json (no transformers in the stub).
            raise ValueError(f"the checkpoint's tokenizer ({type(tokenizer).__name__}) saves no {TOKENIZER_FILE}")
        reports = [
            *export_encoder(
                loaded.vision,
                models.vision,
                loaded.vision_feeds(models.vision.parity_batch_sizes),
                sizes.as_dict(),
                staging / models.vision.name,
                opset,
                precision,
                qdq,
            ),
            *export_encoder(
                loaded.text,
                models.text,
                token_feeds(tokenizer, sizes, models.text.parity_batch_sizes, padding),
                sizes.as_dict(),
                staging / models.text.name,
                opset,
                precision,
                qdq,
            ),
        ]
        if not all(report.passed for report in reports):
            return reports
        loaded.processor.image_processor.save_pretrained(staging / models.preprocess.name / IMAGE_PROCESSOR_DIR)
        (staging / models.similarity.name).mkdir()
        write_logit_scale(staging / models.similarity.name, loaded.logit_scale, loaded.logit_bias)
        # Here, not at the top: the configs need tritonclient, which the GPU check's machine lacks.
        from export.repository import VERSION, write_repository

        write_repository(repository, models.all(), precision)
        for component in staging.iterdir():
            install(component, repository / component.name / VERSION)
    return reports
