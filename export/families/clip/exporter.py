"""CLIP export: vision and text encoders (projection and L2 normalisation inside the graph) to ONNX,
each checked against PyTorch, plus the tokenizer, image processor and logit scale the server needs.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, CLIPModel

from export.components import export_encoder, install
from export.families.clip.spec import CLIP_MODELS, CLIP_TEXT, CLIP_VISION
from export.families.dual_encoder import PARITY_SENTENCES
from export.onnx_export import DEFAULT_OPSET
from export.parity import ParityReport
from export.repository import VERSION, write_repository
from serving.similarity import write_logit_scale
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR
from serving.triton_models.text_tokenize import TOKENIZER_DIR


class VisionEncoder(torch.nn.Module):
    """pixel_values -> L2-normalised image embedding (``CLIPModel(...).image_embeds``)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        return torch.nn.functional.normalize(self.visual_projection(pooled), dim=-1)


class TextEncoder(torch.nn.Module):
    """input_ids, attention_mask -> L2-normalised text embedding (``CLIPModel(...).text_embeds``)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.text_model = model.text_model
        self.text_projection = model.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return torch.nn.functional.normalize(self.text_projection(pooled), dim=-1)


@dataclass(frozen=True)
class ClipSizes:
    """The checkpoint's values for the names the CLIP specs use."""

    image_size: int
    embed_dim: int
    context_length: int
    max_token_id: int
    pad_token_id: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _pixel_feeds(sizes: ClipSizes, batch_sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    generator = np.random.default_rng(0)
    shape = (3, sizes.image_size, sizes.image_size)
    return [{"pixel_values": generator.standard_normal((n, *shape)).astype(np.float32)} for n in batch_sizes]


def _token_feeds(tokenizer: object, sizes: ClipSizes, batch_sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    """Real tokenised sentences padded to each batch's longest, as served: batches of different lengths, up to
    the whole context (the sequence axis is dynamic, so each length is checked, not only the context's)."""
    feeds = []
    for n in batch_sizes:
        texts = [PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(n)]
        encoded = tokenizer(
            texts, padding="longest", truncation=True, max_length=sizes.context_length, return_tensors="np"
        )
        feeds.append({k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    return feeds


def export_clip(checkpoint: Path, repository: Path, opset: int = DEFAULT_OPSET) -> list[ParityReport]:
    """Export every CLIP model into ``repository`` and return the parity reports.

    Everything is built in a staging folder first; the repository changes only when every parity check
    passes, so a failed export never leaves a half-written or out-of-tolerance model to be served.
    """
    model = CLIPModel.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, backend="pil")  # as the server preprocesses
    tokenizer = processor.tokenizer
    context_length = min(tokenizer.model_max_length, model.config.text_config.max_position_embeddings)
    tokenizer.model_max_length = context_length
    sizes = ClipSizes(
        image_size=model.config.vision_config.image_size,
        embed_dim=model.config.projection_dim,
        context_length=context_length,
        max_token_id=model.config.text_config.vocab_size - 1,
        pad_token_id=tokenizer.pad_token_id,
    )
    with tempfile.TemporaryDirectory(prefix="vlm-export-") as scratch:
        staging = Path(scratch)
        reports = [
            export_encoder(
                VisionEncoder(model),
                CLIP_VISION,
                _pixel_feeds(sizes, CLIP_VISION.parity_batch_sizes),
                sizes.as_dict(),
                staging / CLIP_VISION.name,
                opset,
            ),
            export_encoder(
                TextEncoder(model),
                CLIP_TEXT,
                _token_feeds(tokenizer, sizes, CLIP_TEXT.parity_batch_sizes),
                sizes.as_dict(),
                staging / CLIP_TEXT.name,
                opset,
            ),
        ]
        if not all(report.passed for report in reports):
            return reports
        tokenizer.save_pretrained(staging / "clip_tokenize" / TOKENIZER_DIR)
        processor.image_processor.save_pretrained(staging / "clip_preprocess" / IMAGE_PROCESSOR_DIR)
        (staging / "clip_similarity").mkdir()
        write_logit_scale(staging / "clip_similarity", float(model.logit_scale.detach().exp()))
        write_repository(repository, CLIP_MODELS)
        for component in staging.iterdir():
            install(component, repository / component.name / VERSION)
    return reports
