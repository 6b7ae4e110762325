"""Qwen2-VL export: the vision tower with its patch merger to ONNX (a dynamic patch axis and ``grid_thw`` as inputs;
``tower.VisionTower``), checked against transformers' own tower on several grids and several images in one call;
the image processor's settings for the preprocess step; and a link from the decoder to the checkpoint, whose
language model and tokenizer vLLM loads in place. The repository changes only when every check passes.

Only the vision tower's weights are read.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoVideoProcessor

from export.components import install
from export.families.base import Feeds
from export.families.llava.spec import CHECKPOINT_LINK
from export.families.qwen2_vl.spec import FAMILY, MERGE_SIZE, patch_models
from export.families.qwen2_vl.tower import VisionTower
from export.parity import ParityReport, check_parity
from export.specs import Tolerance
from serving.generation.checkpoint import require_all_weights
from serving.manifest import ONNX_FILE
from serving.onnx_runner import OnnxRunner
from serving.patch_profile import MAX_PATCHES, patch_profile
from serving.smart_resize import PatchSettings
from serving.triton_models.image_preprocess import IMAGE_PROCESSOR_DIR
from serving.triton_models.patch_preprocess import VIDEO_PROCESSOR_DIR
from serving.video_patches import read_video_settings

VISION_KEYS = {r"^visual\.": "", r"^model\.visual\.": ""}  # Qwen/Qwen2-VL-*'s names, and transformers 5's
TOLERANCE = Tolerance(1e-4, 0.9999)  # ONNX Runtime vs PyTorch, float32 (the exported encoders' bar)
# Patch grids (t, h, w) the parity is checked on, one call each: a single small image, a wide and a large one
# together, three of which one is tall, and a two-frame clip (attention stays within each frame); grids past 8 x 8
# patches span several of Qwen2.5-VL's 112-pixel windows.
PARITY_GRIDS = (((1, 2, 2),), ((1, 2, 10), (1, 14, 14)), ((1, 4, 4), (1, 8, 2), (1, 6, 6)), ((2, 12, 6),))


def check_servable(config: Any) -> None:
    """Refuses, before any export work, what the served models assume."""
    if config.vision_config.spatial_merge_size != MERGE_SIZE:
        raise ValueError(
            f"vision_config.spatial_merge_size: {config.vision_config.spatial_merge_size}; the served models merge "
            f"{MERGE_SIZE} x {MERGE_SIZE} patches"
        )


def load_vision_tower(checkpoint: Path, config: Any, vision_class: Any = None) -> Any:
    """The checkpoint's vision tower alone (``vision_class``, default Qwen2-VL's)."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the language model's weights are skipped on purpose: no load report
    model, loading = (vision_class or Qwen2VisionTransformerPretrainedModel).from_pretrained(
        checkpoint, config=config.vision_config, key_mapping=VISION_KEYS, dtype=torch.float32, output_loading_info=True
    )
    require_all_weights(loading, "vision tower")
    return model.eval()


def vision_tower(visual: Any, config: Any) -> VisionTower:
    """The exportable tower; with window attention where the config has windows (Qwen2.5-VL's ``window_size``, in
    pixels, and its ``fullatt_block_indexes``)."""
    vision = config.vision_config
    window_pixels = getattr(vision, "window_size", 0) or 0
    units = window_pixels // (vision.spatial_merge_size * vision.patch_size)
    return VisionTower(visual, units, getattr(vision, "fullatt_block_indexes", None) or ())


def parity_feeds(config: Any) -> Feeds:
    vision = config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
    generator = np.random.default_rng(0)
    feeds: Feeds = []
    for grids in PARITY_GRIDS:
        grid = np.array(grids, dtype=np.int64)
        patches = generator.standard_normal((int(grid.prod(-1).sum()), width)).astype(np.float32)
        feeds.append({"pixel_values": patches, "image_grid_thw": grid})
    return feeds


def export_tower(tower: VisionTower, feed: dict[str, npt.NDArray[Any]], target: Path, opset: int) -> None:
    inputs = {name: torch.from_numpy(value) for name, value in feed.items()}
    patches = torch.export.Dim("patches", min=MERGE_SIZE**2, max=MAX_PATCHES)
    images = torch.export.Dim("images", min=1, max=MAX_PATCHES // MERGE_SIZE**2)
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            tower.eval(),
            args=(),
            kwargs=inputs,
            input_names=list(inputs),
            output_names=["image_embeds"],
            dynamic_shapes={"pixel_values": {0: patches}, "image_grid_thw": {0: images}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    exporter_log.setLevel(previous_level)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        program.model_proto,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{ONNX_FILE}.data",
    )
    onnx.checker.check_model(str(target))


def export_qwen2_vl(
    checkpoint: Path,
    repository: Path,
    name: str,
    opset: int,
    family: str = FAMILY,
    vision_class: Any = None,
    video_seconds: bool = False,
) -> list[ParityReport]:
    """Into ``repository`` under ``name``, tagged as ``family``'s, the tower loaded as ``vision_class``;
    ``video_seconds`` as ``patch_models``'."""
    from export.repository import VERSION, write_repository

    checkpoint = checkpoint.resolve()
    config = AutoConfig.from_pretrained(checkpoint)
    check_servable(config)
    models = patch_models(family, name, video_seconds)
    preprocess, vision, decoder, _ = models
    visual = load_vision_tower(checkpoint, config, vision_class)
    tower = vision_tower(visual, config)
    feeds = parity_feeds(config)

    def reference(feed: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        with torch.inference_mode():
            output = visual(torch.from_numpy(feed["pixel_values"]), grid_thw=torch.from_numpy(feed["image_grid_thw"]))
        return {"image_embeds": output.pooler_output.numpy()}

    with tempfile.TemporaryDirectory(prefix="vlm-export-") as scratch:
        staging = Path(scratch)
        onnx_path = staging / vision.name / ONNX_FILE
        export_tower(tower, feeds[1], onnx_path, opset)
        with OnnxRunner(onnx_path) as runner:
            report = check_parity(vision.name, ("pytorch", reference), ("onnxruntime", runner.run), feeds, TOLERANCE)
        if not report.passed:
            return [report]
        processor = AutoImageProcessor.from_pretrained(checkpoint, backend="pil")
        processor.save_pretrained(staging / preprocess.name / IMAGE_PROCESSOR_DIR)
        AutoVideoProcessor.from_pretrained(checkpoint).save_pretrained(staging / preprocess.name / VIDEO_PROCESSOR_DIR)
        # The patch range of one call of the tower (an image or a video frame group), as these processors bound it:
        # the GPU targets' TensorRT profile (serving/patch_profile.py).
        patch_profile(
            PatchSettings.read(staging / preprocess.name / IMAGE_PROCESSOR_DIR),
            read_video_settings(staging / preprocess.name / VIDEO_PROCESSOR_DIR),
        ).write(staging / vision.name)
        (staging / decoder.name).mkdir()
        os.symlink(checkpoint, staging / decoder.name / CHECKPOINT_LINK, target_is_directory=True)
        write_repository(repository, models)
        for component in staging.iterdir():
            install(component, repository / component.name / VERSION)
    return [report]
