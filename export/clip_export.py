"""CLIP export: vision and text encoders (projection and L2 normalisation inside the graph) to ONNX,
each checked against PyTorch, plus the tokenizer, image processor and logit scale the server needs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, CLIPModel

from export.clip_spec import CLIP_MODELS, CLIP_TEXT, CLIP_VISION
from export.onnx_export import DEFAULT_OPSET, export_component
from export.parity import ParityReport, check_parity
from export.repository import VERSION, write_repository
from export.specs import OnnxComponentSpec, TensorSpec
from serving.manifest import ComponentManifest, TensorManifest
from serving.onnx_runner import OnnxRunner
from serving.similarity import write_logit_scale
from serving.triton_models.clip_preprocess import IMAGE_PROCESSOR_DIR
from serving.triton_models.clip_tokenize import TOKENIZER_DIR


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _pixel_feeds(sizes: ClipSizes, batch_sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    generator = np.random.default_rng(0)
    shape = (3, sizes.image_size, sizes.image_size)
    return [{"pixel_values": generator.standard_normal((n, *shape)).astype(np.float32)} for n in batch_sizes]


def _token_feeds(tokenizer: object, sizes: ClipSizes, batch_sizes: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    """Real tokenised sentences of varied length, one longer than the context (truncated as served)."""
    sentences = ["a photo of a red circle", "two dogs", "x", "a very long caption " + "about shapes " * 60]
    feeds = []
    for n in batch_sizes:
        texts = [sentences[i % len(sentences)] for i in range(n)]
        encoded = tokenizer(
            texts, padding="max_length", truncation=True, max_length=sizes.context_length, return_tensors="np"
        )
        feeds.append({k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    return feeds


def _torch_runner(module: torch.nn.Module, output: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {output: module(**{k: torch.from_numpy(v) for k, v in feed.items()}).numpy()}

    return run


def _tensor_manifest(tensor: TensorSpec, sizes: dict[str, int]) -> TensorManifest:
    value_range = tensor.resolve_range(sizes)
    return TensorManifest(
        tensor.name, tensor.dtype, list(tensor.resolve(sizes)), list(value_range) if value_range else None
    )


def _export_encoder(
    module: torch.nn.Module,
    spec: OnnxComponentSpec,
    feeds: list[dict[str, np.ndarray]],
    sizes: ClipSizes,
    out_dir: Path,
    opset: int,
) -> ParityReport:
    example = {k: torch.from_numpy(v[:2]) for k, v in feeds[-1].items()}
    onnx_path = export_component(module, example, spec, out_dir, opset)
    output = spec.outputs[0].name
    with OnnxRunner(onnx_path, intra_op_threads=torch.get_num_threads()) as runner:
        report = check_parity(
            spec.name, ("pytorch", _torch_runner(module, output)), ("onnxruntime", runner.run), feeds, spec.tolerance
        )
    table = sizes.as_dict()
    ComponentManifest(
        name=spec.name,
        max_batch_size=spec.max_batch_size,
        inputs=[_tensor_manifest(t, table) for t in spec.inputs],
        outputs=[_tensor_manifest(t, table) for t in spec.outputs],
        parity=report.to_dict(),
    ).write(out_dir)
    return report


def _install(staged: Path, target: Path) -> None:
    """Move a staged folder's files over ``target``'s (replacing files and folders of the same name)."""
    target.mkdir(parents=True, exist_ok=True)
    for item in staged.iterdir():
        destination = target / item.name
        if destination.is_dir():
            shutil.rmtree(destination)
        else:
            destination.unlink(missing_ok=True)
        shutil.move(str(item), str(destination))


def export_clip(checkpoint: Path, repository: Path, opset: int = DEFAULT_OPSET) -> list[ParityReport]:
    """Export every CLIP model into ``repository`` and return the parity reports.

    Everything is built in a staging folder first; the repository changes only when every parity check
    passes, so a failed export never leaves a half-written or out-of-tolerance model to be served.
    """
    model = CLIPModel.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)
    tokenizer = processor.tokenizer
    context_length = min(tokenizer.model_max_length, model.config.text_config.max_position_embeddings)
    tokenizer.model_max_length = context_length
    sizes = ClipSizes(
        image_size=model.config.vision_config.image_size,
        embed_dim=model.config.projection_dim,
        context_length=context_length,
        max_token_id=model.config.text_config.vocab_size - 1,
    )
    with tempfile.TemporaryDirectory(prefix="vlm-export-") as scratch:
        staging = Path(scratch)
        reports = [
            _export_encoder(
                VisionEncoder(model),
                CLIP_VISION,
                _pixel_feeds(sizes, CLIP_VISION.parity_batch_sizes),
                sizes,
                staging / CLIP_VISION.name,
                opset,
            ),
            _export_encoder(
                TextEncoder(model),
                CLIP_TEXT,
                _token_feeds(tokenizer, sizes, CLIP_TEXT.parity_batch_sizes),
                sizes,
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
            _install(component, repository / component.name / VERSION)
    return reports
