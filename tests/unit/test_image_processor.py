"""serving.image_processor: the checkpoint's image processor settings in numpy and Pillow give Hugging Face's
``CLIPImageProcessor`` (PIL backend) pixel values bit for bit, for the CLIP and the LLaVA presets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import AutoImageProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from client.field_errors import FieldRef
from serving.image_processor import PREPROCESSOR_FILE, ImageProcessor, ImageProcessorConfig
from serving.images import decode_image
from serving.triton_models.image_preprocess import DRAFT_MARGIN, draft_side
from tests.images import DEFINED_CASES, encode, scene

# (width, height): the target itself, landscape, portrait, odd sizes, smaller than the target, 1x1, very wide
SIZES = [(64, 64), (96, 80), (80, 96), (300, 120), (63, 65), (65, 63), (30, 20), (1, 1), (200, 10), (7, 500)]


def hugging_face(folder: Path) -> CLIPImageProcessorPil:
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    assert isinstance(processor, CLIPImageProcessorPil)
    return processor


def hf_pixels(processor: CLIPImageProcessorPil, image: Image.Image) -> np.ndarray:
    return processor(images=[image], return_tensors="np")["pixel_values"][0]


def noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(params=["tiny_clip", "tiny_llava"])
def checkpoint(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_pixel_values_equal_hugging_face_bit_for_bit(checkpoint: Path, size: tuple[int, int]) -> None:
    ours, theirs = ImageProcessor.from_folder(checkpoint), hugging_face(checkpoint)
    images = [noise(*size, seed=1)] + ([scene(*size, seed=sum(size))] if min(size) >= 16 else [])
    for image in images:
        expected = hf_pixels(theirs, image)
        actual = ours(image)
        assert actual.dtype == np.float32 and actual.shape == expected.shape == (3, 64, 64)
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("case", sorted(DEFINED_CASES))
def test_every_defined_image_case_decodes_and_processes_as_hugging_face_does(tiny_clip: Path, case: str) -> None:
    payload, expected_rgb = DEFINED_CASES[case]()
    decoded = decode_image(payload, FieldRef("image", 0), 36_000_000, 20)
    np.testing.assert_array_equal(
        ImageProcessor.from_folder(tiny_clip)(decoded), hf_pixels(hugging_face(tiny_clip), expected_rgb)
    )


def test_the_exported_repository_copies_hold_the_same_settings(model_repository: Path, tiny_clip: Path) -> None:
    for model in ("clip_preprocess", "llava_preprocess"):
        folder = model_repository / model / "1" / "image_processor"
        assert (folder / PREPROCESSOR_FILE).is_file()
        image = noise(90, 70, seed=3)
        np.testing.assert_array_equal(ImageProcessor.from_folder(folder)(image), hf_pixels(hugging_face(folder), image))


@pytest.mark.parametrize(
    "settings",
    [
        {"size": 50, "crop_size": 40},
        {"size": {"height": 48, "width": 40}, "do_center_crop": False},
        {"size": {"shortest_edge": 32}, "crop_size": {"height": 48, "width": 40}},  # crop larger: zero padding
        {"resample": 2, "do_normalize": False},
        {"do_rescale": False, "image_mean": 0.5, "image_std": 2.0},
        {"do_resize": False, "crop_size": 50},
    ],
    ids=[
        "int-sizes",
        "fixed-size-no-crop",
        "crop-larger-than-image",
        "bilinear-unnormalised",
        "no-rescale",
        "no-resize",
    ],
)
def test_other_clip_processor_settings_equal_hugging_face_too(settings: dict) -> None:
    base = {"image_mean": [0.48, 0.45, 0.40], "image_std": [0.26, 0.26, 0.27], "size": {"shortest_edge": 56}}
    config = {**base, **settings}
    ours, theirs = ImageProcessor(ImageProcessorConfig.from_dict(config)), CLIPImageProcessorPil(**config)
    for size in ((96, 80), (41, 77)):
        image = noise(*size, seed=size[0])
        np.testing.assert_array_equal(ours(image), hf_pixels(theirs, image))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image_processor_type": "ViTImageProcessor"}, "image_processor_type"),
        ({"do_pad": True}, "do_pad"),
        ({"size": {"shortest_edge": 224, "longest_edge": 448}}, "size"),
        ({"image_grid_pinpoints": [[336, 672]]}, "image_grid_pinpoints"),
        ({"resample": 99}, "resample"),
    ],
)
def test_settings_it_does_not_implement_are_refused_by_name(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageProcessorConfig.from_dict({"image_mean": 0.5, "image_std": 0.5, **settings})


def test_the_settings_are_read_from_a_preprocessor_config_file_first(tmp_path: Path, tiny_clip: Path) -> None:
    settings = {"size": {"shortest_edge": 40}, "crop_size": 40, "image_mean": 0.5, "image_std": 0.5}
    (tmp_path / PREPROCESSOR_FILE).write_text(json.dumps(settings))
    assert ImageProcessor.from_folder(tmp_path)(noise(80, 60, seed=0)).shape == (3, 40, 40)
    assert ImageProcessorConfig.read(tiny_clip).crop == (64, 64)  # processor_config.json's image_processor entry


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_within_a_few_levels_of_the_full_decode(tiny_clip: Path) -> None:
    processor = ImageProcessor.from_folder(tiny_clip)
    side = draft_side(processor)
    assert side == DRAFT_MARGIN * 64
    smooth = noise(8, 6, seed=4).resize((1024, 768), Image.Resampling.BICUBIC)
    payload = encode(smooth, "JPEG", quality=90)
    drafted = decode_image(payload, FieldRef("image", 0), 36_000_000, 20, draft_side=side)
    assert drafted.size == (256, 192)  # 1/4 scale: 1/8 would leave 96 rows, under twice the target
    full = Image.open(io.BytesIO(payload)).convert("RGB")
    difference = np.abs(processor(drafted) - hf_pixels(hugging_face(tiny_clip), full))
    # One level of 255 is about 0.015 after normalisation: the reduced decode stays within a few levels.
    assert difference.max() < 0.1 and difference.mean() < 0.01
    small = encode(scene(250, 250, seed=5), "JPEG", quality=90)  # under 4x the target: decoded whole
    assert decode_image(small, FieldRef("image", 0), 36_000_000, 20, draft_side=side).size == (250, 250)
