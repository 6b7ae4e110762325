"""Inputs an exported encoder's engine is checked on, from what the repository holds: noise for pixels, real
tokenised sentences for a text encoder, and the exported vision tower's features for a projector. Families pick
one per exported encoder (``Family.parity_feeds``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.families.base import FeedMaker, Feeds
from export.families.dual_encoder import PARITY_SENTENCES
from export.repository import VERSION
from export.specs import PythonModelSpec
from serving.manifest import ONNX_FILE, ComponentManifest
from serving.onnx_runner import OnnxRunner
from serving.text_tokenizer import TextTokenizer
from serving.triton_models.text_tokenize import TOKENIZER_DIR


def pixel_feeds(repository: Path, manifest: ComponentManifest, batch_sizes: tuple[int, ...]) -> Feeds:
    generator = np.random.default_rng(0)
    tensor = manifest.inputs[0]
    return [{tensor.name: generator.standard_normal((n, *tensor.shape)).astype(np.float32)} for n in batch_sizes]


def token_feeds(tokenize: PythonModelSpec) -> FeedMaker:
    """Real tokenised sentences of varied length, one longer than the context, padded as ``tokenize`` serves them,
    so a dynamic sequence axis is checked at several lengths up to the whole context."""

    def feeds(repository: Path, manifest: ComponentManifest, batch_sizes: tuple[int, ...]) -> Feeds:
        padding = tokenize.parameters.get("padding", "longest")
        tokenizer = TextTokenizer(repository / tokenize.name / VERSION / TOKENIZER_DIR, padding=padding)
        made = []
        for n in batch_sizes:
            encoded = tokenizer.encode([PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(n)])
            made.append({t.name: encoded[t.name] for t in manifest.inputs})
        return made

    return feeds


def feature_feeds(vision: str) -> FeedMaker:
    """A projector is checked on the exported vision tower's real features, not noise of the wrong scale."""

    def feeds(repository: Path, manifest: ComponentManifest, batch_sizes: tuple[int, ...]) -> Feeds:
        folder = repository / vision / VERSION
        pixels = pixel_feeds(repository, ComponentManifest.read(folder), batch_sizes)
        with OnnxRunner(folder / ONNX_FILE) as runner:
            return [{manifest.inputs[0].name: next(iter(runner.run(feed).values()))} for feed in pixels]

    return feeds
