"""One spec per served model: it drives the ONNX export (names, dynamic axes) and the Triton config.

Dims are per item (the batch axis is implied by ``max_batch_size > 0``). A dim given as a string names a
size that depends on the checkpoint (``"image_size"``, ``"embed_dim"``): it is ``-1`` in the Triton
config and a symbolic ONNX dim, so one checked-in repository serves any checkpoint of the family, and the
exported sidecar records the concrete value the runner validates against.

A dim may instead name one of an exported component's ``dynamic_axes`` (a text's length in tokens): it varies
from request to request up to a bound, so it is dynamic in the ONNX graph, ``-1`` in the Triton config, a
min/opt/max range in the TensorRT profile, and requests of different lengths are padded to one batch with
each input's ``pad_value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bytes", "bool")

Dim = int | str


def _check_name(kind: str, name: str) -> None:
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"{kind} name must be a non-empty identifier, got {name!r}")


def _check_model_name(name: str) -> None:
    """A Triton model name is a folder name: a checkpoint's name (``vlm-export model --name``) prefixes it, so it
    may also hold '-' and '.' (client.catalog.check_model_name)."""
    if not name or not name[0].isalnum() or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"model name must be letters, digits, '_', '-' and '.', got {name!r}")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    dims: tuple[Dim, ...]
    value_range: tuple[Dim, Dim] | None = None  # inclusive; e.g. token ids (0, "max_token_id")
    optional: bool = False  # a request may leave it out (Triton's `optional: true`)
    pad_value: Dim | None = None  # fills a dynamic axis when requests of different lengths share a batch

    def __post_init__(self) -> None:
        _check_name("tensor", self.name)
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name}: dtype must be one of {DTYPES}, got {self.dtype!r}")
        for dim in self.dims:
            if isinstance(dim, int) and dim < 1 and dim != -1:
                raise ValueError(f"tensor {self.name}: dims must be positive, -1 or a name, got {dim}")

    def resolve(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """The concrete per-item shape for one checkpoint (-1 stays variable)."""
        return tuple(_resolve(d, sizes) for d in self.dims)

    def resolve_pad(self, sizes: dict[str, int]) -> int | None:
        return None if self.pad_value is None else _resolve(self.pad_value, sizes)

    def resolve_range(self, sizes: dict[str, int]) -> tuple[int, int] | None:
        if self.value_range is None:
            return None
        low, high = (_resolve(bound, sizes) for bound in self.value_range)
        return low, high


def _resolve(value: Dim, sizes: dict[str, int]) -> int:
    return sizes[value] if isinstance(value, str) else value


@dataclass(frozen=True)
class DynamicAxis:
    """A per-item dim whose size each request chooses, from ``min`` to ``max`` (a number or a checkpoint size
    such as ``"context_length"``); ``opt`` is the size TensorRT tunes its kernels for."""

    name: str
    max: Dim
    opt: Dim
    min: int = 1

    def __post_init__(self) -> None:
        _check_name("dynamic axis", self.name)
        if self.min < 1:
            raise ValueError(f"dynamic axis {self.name}: min must be >= 1, got {self.min}")

    def resolve(self, sizes: dict[str, int]) -> tuple[int, int, int]:
        """(min, opt, max) for one checkpoint; opt is clamped into the range."""
        high = _resolve(self.max, sizes)
        if high < self.min:
            raise ValueError(f"dynamic axis {self.name}: max {high} is below min {self.min}")
        return self.min, min(max(_resolve(self.opt, sizes), self.min), high), high


@dataclass(frozen=True)
class Tolerance:
    """Parity bar between two runtimes of the same component."""

    max_abs_diff: float
    min_cosine: float

    def __post_init__(self) -> None:
        if not self.max_abs_diff > 0 or not 0 < self.min_cosine <= 1:  # also rejects NaN
            raise ValueError("tolerance: max_abs_diff must be > 0 and min_cosine in (0, 1]")


@dataclass(frozen=True)
class Resources:
    """Instances and threads per model, set explicitly so small hosts are not oversubscribed. ``cpu_batch``: the
    batch Triton prefers to form on the CPU targets, for a model whose batch costs about its size there (more only
    adds latency); None batches up to ``max_batch_size`` everywhere."""

    instance_count: int = 1
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    cpu_batch: int | None = None

    def __post_init__(self) -> None:
        if min(self.instance_count, self.intra_op_threads, self.inter_op_threads, self.cpu_batch or 1) < 1:
            raise ValueError("resources: instance and thread counts and cpu_batch must be >= 1")


@dataclass(frozen=True)
class QueuePolicy:
    """Admission control (Triton's queue policy): at most ``max_queue_size`` requests wait for an instance; one
    more is refused at once with UNAVAILABLE "Exceeds maximum queue size", which clients read as busy.
    ``timeout_us`` (0: none) also refuses a request that has waited longer, e.g. behind a stuck instance."""

    max_queue_size: int
    timeout_us: int = 0

    def __post_init__(self) -> None:
        if self.max_queue_size < 1 or self.timeout_us < 0:
            raise ValueError("queue policy: max_queue_size must be >= 1 and timeout_us >= 0")


@dataclass(frozen=True)
class ModelSpec:
    """Fields every served model has."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 0
    response_cache: bool = False
    queue: QueuePolicy | None = None  # None: Triton's default, an unbounded queue

    def __post_init__(self) -> None:
        _check_model_name(self.name)
        if self.max_batch_size < 0:
            raise ValueError(f"model {self.name}: max_batch_size must be >= 0")
        names = [t.name for t in (*self.inputs, *self.outputs)]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name}: tensor names must be unique, got {names}")


@dataclass(frozen=True)
class OnnxComponentSpec(ModelSpec):
    """A leaf exported to ONNX (and later TensorRT); the backend depends on the deployment target."""

    tolerance: Tolerance = Tolerance(1e-4, 0.9999)  # ONNX Runtime vs PyTorch, and a float32 TensorRT engine
    fp16_tolerance: Tolerance = Tolerance(2e-2, 0.999)  # a float16 TensorRT engine vs ONNX Runtime
    bf16_tolerance: Tolerance = Tolerance(6e-2, 0.995)  # bfloat16 keeps 8 mantissa bits to float16's 11
    # An int8 ONNX Runtime export vs PyTorch float32: the cosine is the budget (the 0.99); the absolute
    # bar only catches a broken graph, since an int8 export's error scales with the outputs' range.
    int8_tolerance: Tolerance = Tolerance(0.5, 0.99)
    # The op types an int8 export quantizes (export/precision.py): the weight MatMuls carry nearly all the compute.
    # A ViT's patch embedding stays a float Conv: clip-vit-base-patch32's vision tower ran a batch of 8 in 0.60 s
    # (median of 12) with it, 0.68 s with ConvInteger, on 2 cores with AVX-512 VNNI.
    int8_ops: tuple[str, ...] = ("MatMul", "Gemm")
    # A TensorRT fp8 engine (and its QDQ model on ONNX Runtime) vs PyTorch float32: E4M3 keeps 3 mantissa bits, and
    # ONNX Runtime scales fp8 by each tensor's spread (export/qdq.py), so its bar sits below int8's. Measured (QDQ
    # model, lowest cosine): CLIP text towers 0.9876 (tiny) and 0.9837 (clip-vit-base-patch32, random weights), every
    # other tower and projector >= 0.996.
    fp8_tolerance: Tolerance = Tolerance(0.5, 0.98)
    # The op types a TensorRT int8 / fp8 export quantizes in its QDQ model (export/qdq.py), those with a constant
    # weight only: the layers' GEMMs. Not the token table (Gather: a lookup, no arithmetic to speed up on a GPU), nor
    # the attention's activation-by-activation MatMuls, which stay at the builder's float16.
    qdq_ops: tuple[str, ...] = ("MatMul", "Gemm")
    resources: Resources = Resources()
    max_queue_delay_us: int = 2000
    # Batch sizes Triton launches at once; below the smallest it waits up to max_queue_delay_us for more.
    preferred_batch_sizes: tuple[int, ...] = ()
    parity_batch_sizes: tuple[int, ...] = (1, 3)
    dynamic_axes: tuple[DynamicAxis, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_batch_size < 1:
            raise ValueError(f"model {self.name}: an exported encoder must batch (max_batch_size >= 1)")
        if any(not 1 <= size <= self.max_batch_size for size in self.preferred_batch_sizes):
            raise ValueError(
                f"model {self.name}: preferred batch sizes must lie in 1..{self.max_batch_size}, "
                f"got {self.preferred_batch_sizes}"
            )
        names = {axis.name for axis in self.dynamic_axes}
        for tensor in self.outputs:
            if names & set(tensor.dims):  # padding added at batch time would leak into such an output
                raise ValueError(f"model {self.name}: output {tensor.name} may not have a dynamic axis")
        for axis in self.dynamic_axes:
            holders = [t for t in self.inputs if axis.name in t.dims]
            if not holders:
                raise ValueError(f"model {self.name}: dynamic axis {axis.name} is no input's dim")
            for tensor in holders:
                if tensor.pad_value is None:
                    raise ValueError(
                        f"model {self.name}: input {tensor.name} has the dynamic axis {axis.name}, so needs a pad_value"
                    )

    def axis(self, name: str) -> DynamicAxis | None:
        return next((axis for axis in self.dynamic_axes if axis.name == name), None)

    def has_dynamic_axis(self, tensor: TensorSpec) -> bool:
        return any(self.axis(d) is not None for d in tensor.dims if isinstance(d, str))

    def item_shapes(self, tensor: TensorSpec, sizes: dict[str, int]) -> tuple[tuple[int, ...], ...]:
        """The (min, opt, max) per-item shapes of ``tensor`` for one checkpoint; they differ only on dynamic axes."""
        shapes: list[list[int]] = [[], [], []]
        for dim in tensor.dims:
            axis = self.axis(dim) if isinstance(dim, str) else None
            values = axis.resolve(sizes) if axis else (_resolve(dim, sizes),) * 3
            for shape, value in zip(shapes, values, strict=True):
                shape.append(value)
        return tuple(tuple(shape) for shape in shapes)


@dataclass(frozen=True)
class PythonModelSpec(ModelSpec):
    """A python-backend model; ``entry_point`` ("module:Class") is the TritonPythonModel it serves."""

    entry_point: str = ""
    resources: Resources = Resources()
    parameters: dict[str, str] = field(default_factory=dict)
    decoupled: bool = False
    # It runs an ONNX graph itself (ONNX Runtime in its process): on the GPU targets its instances are GPU instances
    # and its session uses TensorRT (export/triton_config.py); elsewhere it stays on the CPU.
    onnx_on_gpu: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        module, _, cls = self.entry_point.partition(":")
        if not module or not cls:
            raise ValueError(f"model {self.name}: entry_point must be 'module:Class', got {self.entry_point!r}")


@dataclass(frozen=True)
class EnsembleStep:
    model: str
    input_map: dict[str, str]  # step model's input -> ensemble tensor
    output_map: dict[str, str]  # step model's output -> ensemble tensor


@dataclass(frozen=True)
class EnsembleSpec(ModelSpec):
    steps: tuple[EnsembleStep, ...] = ()
    # Config parameters: on the ensembles a client calls, what serving and the gateway read about the model they
    # serve (its name, family, kind and task: client/catalog.py).
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.steps:
            raise ValueError(f"ensemble {self.name}: needs at least one step")
        if self.queue is not None:
            raise ValueError(f"ensemble {self.name}: Triton has no queue for an ensemble; bound its steps instead")
        produced = {t.name for t in self.inputs}
        for step in self.steps:
            missing = set(step.input_map.values()) - produced
            if missing:
                raise ValueError(
                    f"ensemble {self.name}: step {step.model} reads {sorted(missing)} before any step makes it"
                )
            produced |= set(step.output_map.values())
        missing = {t.name for t in self.outputs} - produced
        if missing:
            raise ValueError(f"ensemble {self.name}: outputs {sorted(missing)} are made by no step")
