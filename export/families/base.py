"""What a family is to the rest of the project: the typed contract every entry of the registry fulfils.

A family is what a checkpoint's ``config.json`` names (its ``architectures``, else its ``model_type``). It owns its
served models' specs, its export (which saves the image processor its preprocess step reproduces), the image tokens
it spends per image, what it hands the decoder, the inputs its encoders' parity is checked on, and the request that
probes it. Nothing outside ``export/families/`` asks which family it has in hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy.typing as npt

from export.onnx_export import DEFAULT_OPSET
from export.parity import ParityReport
from export.specs import ModelSpec, OnnxComponentSpec
from serving.manifest import ComponentManifest

if TYPE_CHECKING:  # torch, imported only where a family's modules are built
    from export.families.measured import MeasuredComponent

Feeds = list[dict[str, npt.NDArray[Any]]]
# (repository, the exported component's manifest, batch sizes) -> inputs to check an engine of it on
FeedMaker = Callable[[Path, ComponentManifest, tuple[int, ...]], Feeds]
ProbeTask = Literal["rank", "chat"]


@dataclass(frozen=True)
class ExportOptions:
    opset: int = DEFAULT_OPSET
    fuse_projector: bool = False  # a VLM's projector inside its vision tower's graph (one step fewer)


@dataclass(frozen=True)
class Probe:
    """The request that shows a family's python models alive: ``rank`` (an image and a text through the rank
    ensemble) or ``chat`` (one generated token about an image through the VLM ensemble)."""

    model: str
    task: ProbeTask


class Family(Protocol):
    @property
    def name(self) -> str:
        """Short and lower-case: the default prefix of its models and its ``vlm-export`` alias."""

    @property
    def architectures(self) -> tuple[str, ...]:
        """``config.json`` ``architectures`` entries it serves; the first model_type-only match uses ``model_types``."""

    @property
    def model_types(self) -> tuple[str, ...]: ...

    @property
    def checked_in(self) -> bool:
        """Its default models are part of the checked-in ``model_repository/``."""

    @property
    def decoder_inputs(self) -> tuple[str, ...]:
        """What its decoder is handed besides the text (``image_embeds``); () for a family without a decoder."""

    @property
    def image_encoding(self) -> str:
        """Who encodes its images and why, for the operator (``vlm-export model`` prints it)."""

    @property
    def probe(self) -> Probe: ...

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        """The served models an export with these options writes."""

    def encoder_variants(self) -> tuple[OnnxComponentSpec, ...]:
        """Every exported encoder any option can produce (an engine build finds its spec among them)."""

    def parity_feeds(self) -> Mapping[str, FeedMaker]:
        """Exported encoder -> the inputs an engine of it is checked on."""

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        """Its exported encoders and projectors as torch modules (float32, on the torch ``device``) with inputs, for
        the GPU precision check; the checkpoint's weights."""

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """Tokens an image of this size costs the decoder's context (0 for a family without a decoder)."""

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        """Into ``repository``; it changes only when every parity check passes. ``ValueError``: not servable."""
