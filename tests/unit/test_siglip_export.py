"""The SigLIP export on a random SigLIP the tests build: each tower's ONNX equals PyTorch, the graphs keep a dynamic
batch, and the files the python steps read reproduce the checkpoint's processor (resize without a crop, texts padded
to max_length) and calibration (logit scale and bias)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from transformers import AutoProcessor

from export.families import family_for_checkpoint
from export.families.siglip.spec import SIGLIP
from export.parity import ParityReport
from serving.image_processor import ImageProcessor
from serving.similarity import read_logit_bias, read_logit_scale
from serving.text_tokenizer import TextTokenizer
from tests.images import scene

TEXTS = ["a photo of a red circle", "x", "Ünïcödé 日本語 🙂", "a very long caption " + "about shapes " * 20]


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_a_siglip_checkpoint_is_the_siglip_family(tiny_siglip: Path) -> None:
    choice = family_for_checkpoint(tiny_siglip)
    assert choice.family.name == "siglip" and "SiglipModel" in choice.reason


def test_both_towers_pass_parity_at_every_batch_size_including_the_extremes(
    exported_siglip: list[ParityReport],
) -> None:
    assert [r.component for r in exported_siglip] == ["siglip_vision", "siglip_text"]
    for report, spec in zip(exported_siglip, (SIGLIP.vision, SIGLIP.text), strict=True):
        assert report.passed, report.summary()
        assert {case.batch_size for case in report.cases} >= {1, spec.max_batch_size}
        assert report.max_abs_diff < 1e-4 and report.min_cosine > 0.9999


def test_the_graphs_have_a_dynamic_batch_and_the_text_the_whole_context(model_repository: Path) -> None:
    vision = onnx.load(str(model_repository / "siglip_vision/1/model.onnx"), load_external_data=False)
    assert _dims(vision.graph.input[0]) == ["batch", 3, "image_size", "image_size"]
    assert _dims(vision.graph.output[0]) == ["batch", "embed_dim"]
    text = onnx.load(str(model_repository / "siglip_text/1/model.onnx"), load_external_data=False)
    assert [_dims(value) for value in text.graph.input] == [["batch", "context_length"]] * 2


@pytest.mark.parametrize("size", [(48, 48), (96, 40), (31, 77), (1, 1)])
def test_served_preprocessing_resizes_without_a_crop_as_the_checkpoints_processor(
    model_repository: Path, tiny_siglip: Path, size: tuple[int, int]
) -> None:
    image = scene(*size, seed=sum(size)) if min(size) > 16 else Image.new("RGB", size, (10, 200, 30))
    ours = ImageProcessor.from_folder(model_repository / "siglip_preprocess/1/image_processor")(image)
    processor = AutoProcessor.from_pretrained(tiny_siglip, backend="pil").image_processor
    theirs = processor(images=[image], return_tensors="np")["pixel_values"][0]
    assert ours.shape == theirs.shape == (3, 48, 48)
    np.testing.assert_array_equal(ours, theirs)


def test_served_tokens_are_padded_to_max_length_as_the_checkpoints_processor(
    model_repository: Path, tiny_siglip: Path
) -> None:
    ours = TextTokenizer(model_repository / "siglip_tokenize/1/tokenizer", padding="max_length").encode(TEXTS)
    processor = AutoProcessor.from_pretrained(tiny_siglip)
    theirs = processor(text=TEXTS, padding="max_length", truncation=True, return_tensors="np")
    assert ours["input_ids"].shape == (len(TEXTS), 12)
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_the_similarity_step_reads_the_checkpoints_scale_and_bias(model_repository: Path) -> None:
    folder = model_repository / "siglip_similarity/1"
    assert read_logit_scale(folder) == pytest.approx(math.exp(1.5), rel=1e-6)
    assert read_logit_bias(folder) == pytest.approx(-0.25)
