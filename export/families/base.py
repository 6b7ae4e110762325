"""What a family is to the rest of the project: the typed contract every entry of the registry fulfils.

A family is what a checkpoint's ``config.json`` names (its ``architectures``, else its ``model_type``). It owns its
served models' specs, its export (which saves the image processor its preprocess step reproduces), the image tokens
it spends per image, what it hands the decoder, the inputs its encoders' parity is checked on, and the request that
probes it. Nothing outside ``export/families/`` asks which family it has in hand.

Every checkpoint is exported under a name (``ExportOptions.name``, ``vlm-export model --name``; default the family's
own name) that prefixes all its Triton models, so several checkpoints, of one family or of several, share a
repository. Its client-facing ensembles carry the name, family, kind and task as config parameters
(export/families/tags.py), and its probe ensemble the probe's task: serving and the gateway read those, not names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy.typing as npt

from client.catalog import check_model_name
from export.onnx_export import DEFAULT_OPSET
from export.parity import ParityReport
from export.precision import DEFAULT_PRECISION, check_cpu_precision, check_qdq_precision
from export.specs import ModelSpec, OnnxComponentSpec
from serving.manifest import ComponentManifest

if TYPE_CHECKING:  # torch, imported only where a family's modules are built
    from export.families.measured import MeasuredComponent

Feeds = list[dict[str, npt.NDArray[Any]]]
# (repository, the exported component's manifest, batch sizes) -> inputs to check an engine of it on
FeedMaker = Callable[[Path, ComponentManifest, tuple[int, ...]], Feeds]


@dataclass(frozen=True)
class ExportOptions:
    opset: int = DEFAULT_OPSET
    fuse_projector: bool = False  # a VLM's projector inside its vision tower's graph (one step fewer)
    name: str | None = None  # the checkpoint's name, its Triton models' prefix; None: the family's name
    precision: str = DEFAULT_PRECISION  # every exported encoder's, on ONNX Runtime (export/precision.py)
    # int8 / fp8: also a QDQ model of each exported encoder, for TensorRT engines of that precision (export/qdq.py)
    qdq: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            check_model_name(self.name)  # a ValueError saying why not
        check_cpu_precision(self.precision)
        if self.qdq is not None:
            check_qdq_precision(self.qdq, self.precision)

    def named(self, default: str) -> str:
        return self.name or default


# Every variant of the options that changes which models a checkpoint's export writes (export/repository.py tells
# an exported checkpoint's variant by its ensembles' steps).
MODEL_VARIANTS = (ExportOptions(), ExportOptions(fuse_projector=True))


class Family(Protocol):
    @property
    def name(self) -> str:
        """Short and lower-case: the default name of its checkpoints (their models' prefix) and its ``vlm-export``
        alias."""

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

    def models(self, options: ExportOptions) -> tuple[ModelSpec, ...]:
        """The served models an export with these options writes, named ``options.name`` (default: the family's);
        the ensembles a client calls tagged (export/families/tags.py), one of them with the probe's task."""

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        """Every exported encoder any option can produce for the checkpoint ``name`` (an engine build finds its
        spec among them)."""

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        """Exported encoder of the checkpoint ``name`` -> the inputs an engine of it is checked on."""

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        """Its exported encoders and projectors as torch modules (float32, on the torch ``device``) with inputs, for
        the GPU precision check; the checkpoint's weights."""

    def image_tokens(self, config: Any, width: int, height: int) -> int:
        """Tokens an image of this size costs the decoder's context (0 for a family without a decoder)."""

    def export(self, checkpoint: Path, repository: Path, options: ExportOptions) -> list[ParityReport]:
        """Into ``repository``, under ``options.name``; it changes only when every parity check passes.
        ``ValueError``: not servable."""


class WithoutEngineEncoders:
    """For a family none of whose encoders is a leaf model built into a TensorRT engine (its vision tower runs in a
    python step, or inside vLLM): no engine variants and no parity feeds. No measured components either, unless the
    family overrides ``measured_components`` (a python step's tower checked at GPU precision)."""

    def encoder_variants(self, name: str | None = None) -> tuple[OnnxComponentSpec, ...]:
        return ()

    def parity_feeds(self, name: str | None = None) -> Mapping[str, FeedMaker]:
        return {}

    def measured_components(self, checkpoint: Path, device: Any) -> list[MeasuredComponent]:
        return []
