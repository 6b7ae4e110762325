"""LLaVA-NeXT export: LLaVA's (the vision tower and projector, each checked against PyTorch, run on every tile;
the image processor; the decoder's checkpoint link) plus what the packing step needs: the checkpoint's newline
vector and its grid (``serving.anyres``: pinpoints, tile side, patches per tile side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors import safe_open

from export.families.llava.exporter import export_llava, safetensors_files
from export.families.llava.spec import MAX_IMAGES, LlavaComponents
from export.families.llava_next.family import anyres_grid
from export.families.llava_next.spec import ENSEMBLE, MAX_TILES, LlavaNextComponents, llava_next_components
from export.onnx_export import DEFAULT_OPSET
from export.parity import ParityReport
from export.precision import DEFAULT_PRECISION
from serving.anyres import NEWLINE_FILE

NEWLINE_KEYS = ("image_newline", "model.image_newline")


def check_servable(config: Any) -> None:
    """Refuses, before any export work, what the packing step or the decoder cannot serve."""
    if config.vision_feature_select_strategy != "default":
        # A tile's features are laid out as a square of patches: with CLS kept they are not (transformers fails too).
        raise ValueError(
            f"vision_feature_select_strategy: {config.vision_feature_select_strategy!r}; LLaVA-NeXT's packing "
            "needs 'default' (CLS dropped)"
        )
    grid = anyres_grid(config)  # pinpoints that are not whole tiles are refused here
    largest = max(grid.tiles(height, width) for height, width in grid.pinpoints)
    if largest * MAX_IMAGES > MAX_TILES:
        raise ValueError(
            f"image_grid_pinpoints: an image may take {largest} tiles, and {MAX_IMAGES} images a request would "
            f"exceed the vision tower's batch of {MAX_TILES}"
        )


def read_newline(checkpoint: Path) -> npt.NDArray[Any]:
    for path in safetensors_files(checkpoint):
        with safe_open(str(path), framework="np") as weights:
            for key in NEWLINE_KEYS:
                if key in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    newline: npt.NDArray[Any] = weights.get_tensor(key).astype(np.float32)
                    return newline
    raise ValueError(f"the checkpoint has no image_newline weight ({' or '.join(NEWLINE_KEYS)})")


def write_packing(checkpoint: Path, config: Any, staging: Path, components: LlavaComponents) -> None:
    if not isinstance(components, LlavaNextComponents):
        raise TypeError("LLaVA-NeXT's export writes the packing step of LLaVA-NeXT's models")
    folder = staging / components.pack.name
    folder.mkdir()
    anyres_grid(config).write(folder)
    np.save(folder / NEWLINE_FILE, read_newline(checkpoint))


def export_llava_next(
    checkpoint: Path,
    repository: Path,
    fuse_projector: bool = False,
    opset: int = DEFAULT_OPSET,
    name: str = ENSEMBLE,
    precision: str = DEFAULT_PRECISION,
    qdq: str | None = None,
) -> list[ParityReport]:
    from transformers import AutoConfig

    check_servable(AutoConfig.from_pretrained(checkpoint))
    return export_llava(
        checkpoint,
        repository,
        fuse_projector,
        opset,
        name,
        precision=precision,
        qdq=qdq,
        components_of=llava_next_components,
        extra=write_packing,
    )
