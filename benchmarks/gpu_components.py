"""The encoders and projectors ``vlm-export`` exports, as the GPU check measures them: each family builds them
(``Family.measured_components``: the modules the export wraps for ONNX, their specs, inputs shaped by them), the
registry picks the family from the checkpoint's config.json.

Imports torch, transformers and numpy only (no tritonclient, vLLM or onnxruntime-gpu): it runs where the project is
not installed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from export.families import family_for_checkpoint
from export.families.measured import Feed, MeasuredComponent

Component = MeasuredComponent
__all__ = ["Component", "Feed", "components"]


def components(checkpoint: Path, device: torch.device) -> list[Component]:
    """``ValueError`` (``UnsupportedCheckpointError``) for a checkpoint no family serves."""
    return family_for_checkpoint(checkpoint).family.measured_components(checkpoint, device)
