"""What the GPU precision check (``benchmarks/gpu_precision.py``) measures of a family: each exported encoder and
projector as the torch module the export wraps for ONNX (so the figures are for the computation that is served),
its spec, and inputs shaped by the spec. A family builds them for a checkpoint (``Family.measured_components``);
dual encoders share ``dual_encoder_components``.

Imports torch, transformers and numpy only through the families' exporters (no tritonclient, vLLM or
onnxruntime-gpu): it runs on the lent GPU machine, where the project is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from export.families.dual_encoder import PARITY_SENTENCES, SEQUENCE, DualEncoderModels
from export.families.dual_encoder_export import LoadedDualEncoder
from export.specs import OnnxComponentSpec, Tolerance

Feed = dict[str, torch.Tensor]
FeedFn = Callable[[int], Feed]
Unit = Literal["images", "texts", "patches"]


class MeasuredSpec(Protocol):
    """What the check reads of a component's spec: an exported encoder's ``OnnxComponentSpec``, or the budgets of a
    tower that a python step runs (``TowerBudgets``)."""

    @property
    def name(self) -> str: ...
    @property
    def tolerance(self) -> Tolerance: ...
    @property
    def fp16_tolerance(self) -> Tolerance: ...
    @property
    def bf16_tolerance(self) -> Tolerance: ...
    @property
    def parity_batch_sizes(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class TowerBudgets:
    """A tower served by a python step (no ``OnnxComponentSpec``): its model name and budgets, float32's its export's
    and the reduced precisions' those every exported encoder has."""

    name: str
    tolerance: Tolerance
    fp16_tolerance: Tolerance = OnnxComponentSpec.fp16_tolerance
    bf16_tolerance: Tolerance = OnnxComponentSpec.bf16_tolerance
    parity_batch_sizes: tuple[int, ...] = OnnxComponentSpec.parity_batch_sizes


@dataclass(frozen=True)
class MeasuredComponent:
    spec: MeasuredSpec
    module: torch.nn.Module  # float32, on the device
    unit: Unit  # what one batch item is (patches: the first input's rows, for a tower that takes any number)
    parity_feed: FeedFn  # n inputs on the device, varied as the export's parity checks vary them
    load_feed: FeedFn  # n inputs on the device as throughput is measured on them


def pixel_feed(spec: OnnxComponentSpec, sizes: Mapping[str, int], device: Any) -> FeedFn:
    """Standard-normal pixel values, as the export's parity checks use, seeded per batch size."""
    tensor = spec.inputs[0]

    def feed(n: int) -> Feed:
        generator = torch.Generator().manual_seed(n)
        return {tensor.name: torch.randn((n, *tensor.resolve(dict(sizes))), generator=generator).to(device)}

    return feed


def dual_encoder_components(
    models: DualEncoderModels, loaded: LoadedDualEncoder, device: Any
) -> list[MeasuredComponent]:
    """Both towers of a dual encoder, the texts padded as the family serves them."""
    tokenizer = loaded.processor.tokenizer
    sizes = loaded.sizes.as_dict()
    context_length = loaded.sizes.context_length
    padding = models.tokenize.parameters["padding"]
    # Throughput at the length TensorRT tunes a dynamic text axis for (every text that long); a fixed axis is the
    # whole context.
    axes = {axis.name: axis for axis in models.text.dynamic_axes}
    typical_tokens = axes[SEQUENCE].resolve(sizes)[1] if SEQUENCE in axes else context_length

    def texts(n: int, padding: str, max_length: int) -> Feed:
        captions = [PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(n)]
        encoded = tokenizer(captions, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
        return {name: encoded[name].to(device) for name in ("input_ids", "attention_mask")}

    def images(n: int) -> Feed:
        return {name: torch.from_numpy(value).to(device) for name, value in loaded.vision_feeds((n,))[0].items()}

    return [
        MeasuredComponent(models.vision, loaded.vision.eval().to(device), "images", images, images),
        MeasuredComponent(
            models.text,
            loaded.text.eval().to(device),
            "texts",
            # Padded as served (to each batch's longest, up to the whole context, for a dynamic axis), as the
            # export checks it.
            lambda n: texts(n, padding, context_length),
            lambda n: texts(n, "max_length", typical_tokens),
        ),
    ]
