"""ONNX -> TensorRT engine with TensorRT's Python API, and a runner that executes an engine (parity checks).

``tensorrt`` and ``torch`` (for CUDA buffers) are imported only when an engine is built or run, so this
module imports on any machine. TensorRT is not installable from the public index on CPU hosts; engines are
built inside the NGC tritonserver image that serves them (docker/), which also makes the engine's TensorRT
version the server's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from export.tensorrt_profiles import ShapeRange
from export.tensorrt_sidecar import (
    DEFAULT_PRECISION,
    DEFAULT_WORKSPACE_BYTES,
    ENGINE_FILE,
    PRECISIONS,
    EngineHost,
    EngineMismatchError,
    EngineSidecar,
    check_loadable,
)

MIN_TENSORRT_MAJOR = 10  # int64 I/O (token ids) and the bfloat16 builder flag
# The builder flags each precision sets. An int8 or fp8 engine is built from a QDQ model (export/qdq.py), an
# explicitly quantized network: INT8 / FP8 lets TensorRT run its quantized GEMMs at that precision, and FP16 lets it
# run what the QDQ model leaves float (normalisation, softmax, the attention's products) in float16, not float32.
# TensorRT's newer guides build QDQ models strongly typed, without precision flags; the unquantized layers would then
# run at the ONNX model's float32.
BUILDER_FLAGS: dict[str, tuple[str, ...]] = {
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "fp32": (),
    "int8": ("INT8", "FP16"),
    "fp8": ("FP8", "FP16"),
}
# fp32 means fp32: TF32 matmuls would miss the float32 parity bar.
CLEARED_FLAGS: dict[str, tuple[str, ...]] = {"fp32": ("TF32",)}


class TensorRTUnavailableError(RuntimeError):
    """No TensorRT Python package or no CUDA GPU here."""


class EngineBuildError(RuntimeError):
    pass


def load_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise TensorRTUnavailableError(
            "TensorRT's Python package is not installed here; build engines inside the NGC tritonserver image "
            "(docker/Dockerfile), whose TensorRT is the one the server loads them with"
        ) from None
    major = int(tensorrt.__version__.split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        raise TensorRTUnavailableError(f"TensorRT {tensorrt.__version__} is too old: {MIN_TENSORRT_MAJOR}.0 or newer")
    return tensorrt


def current_host() -> EngineHost:
    """This machine's TensorRT version and GPU (the first visible one, as Triton's instance 0 uses)."""
    tensorrt = load_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailableError("no CUDA GPU is visible: engines are built on the GPU that serves them")
    major, minor = torch.cuda.get_device_capability(0)
    return EngineHost(tensorrt.__version__, torch.cuda.get_device_name(0), f"{major}.{minor}")


@dataclass(frozen=True)
class BuildSettings:
    precision: str = DEFAULT_PRECISION
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    timing_cache: Path | None = None  # reused across builds and components; written back after each build

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.workspace_bytes < 1 << 20:
            raise ValueError(f"workspace must be at least 1 MiB, got {self.workspace_bytes} bytes")


def set_precision(tensorrt: ModuleType, config: Any, precision: str) -> None:
    """Set ``precision``'s builder flags on a TensorRT builder config (``BUILDER_FLAGS``, ``CLEARED_FLAGS``)."""
    for flag in BUILDER_FLAGS[precision]:
        config.set_flag(getattr(tensorrt.BuilderFlag, flag))
    for flag in CLEARED_FLAGS.get(precision, ()):
        config.clear_flag(getattr(tensorrt.BuilderFlag, flag))


def _timing_cache(config: Any, path: Path | None) -> Any:
    """The saved cache when it fits this TensorRT and GPU; a fresh one otherwise (it is only a speed-up)."""
    saved = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        cache = config.create_timing_cache(saved)
        config.set_timing_cache(cache, ignore_mismatch=False)
    except (RuntimeError, TypeError, ValueError):
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _save_timing_cache(config: Any, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + f".{os.getpid()}.tmp")
    scratch.write_bytes(memoryview(config.get_timing_cache().serialize()))
    scratch.replace(path)  # atomic: a concurrent build never reads half a cache


def build_engine(onnx_path: Path, profile: dict[str, ShapeRange], settings: BuildSettings, out_dir: Path) -> Path:
    """Build ``out_dir/model.plan`` from ``onnx_path`` (external weights beside it are read too)."""
    tensorrt = load_tensorrt()
    logger = tensorrt.Logger(tensorrt.Logger.WARNING)
    builder = tensorrt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode from TensorRT 10 on
    parser = tensorrt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse the {onnx_path.parent.parent.name} ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(tensorrt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    set_precision(tensorrt, config, settings.precision)
    _timing_cache(config, settings.timing_cache)
    optimisation = builder.create_optimization_profile()
    for name, shapes in profile.items():
        optimisation.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(optimisation)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine for {onnx_path.parent.parent.name} (see its log)")
    _save_timing_cache(config, settings.timing_cache)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine_path = out_dir / ENGINE_FILE
    engine_path.write_bytes(memoryview(serialized))
    return engine_path


def _torch_dtypes(tensorrt: ModuleType) -> dict[Any, Any]:
    import torch

    return {
        tensorrt.DataType.FLOAT: torch.float32,
        tensorrt.DataType.HALF: torch.float16,
        tensorrt.DataType.BF16: torch.bfloat16,
        tensorrt.DataType.INT32: torch.int32,
        tensorrt.DataType.INT64: torch.int64,
        tensorrt.DataType.BOOL: torch.bool,
    }


class TensorRTRunner:
    """Runs the engine in ``engine_dir`` on numpy feeds, after checking its sidecar against this host."""

    def __init__(self, engine_dir: Path) -> None:
        self.engine_dir = Path(engine_dir)
        self._engine: Any = None
        self._context: Any = None

    def open(self) -> TensorRTRunner:
        if self._engine is not None:
            return self
        tensorrt = load_tensorrt()
        sidecar = EngineSidecar.read(self.engine_dir)
        check_loadable(sidecar, current_host())
        runtime = tensorrt.Runtime(tensorrt.Logger(tensorrt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine((self.engine_dir / ENGINE_FILE).read_bytes())
        if engine is None:
            raise EngineMismatchError(f"{sidecar.component}: TensorRT could not load the engine; rebuild it")
        self._engine, self._context = engine, engine.create_execution_context()
        self._dtypes = _torch_dtypes(tensorrt)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == tensorrt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in self._inputs]
        return self

    def close(self) -> None:
        self._context = self._engine = None

    def __enter__(self) -> TensorRTRunner:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        self.open()
        engine, context = self._engine, self._context
        buffers = {}  # kept alive until the stream is done with them
        for name in self._inputs:
            dtype = self._dtypes[engine.get_tensor_dtype(name)]
            buffers[name] = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda", dtype)
            context.set_input_shape(name, tuple(buffers[name].shape))
            context.set_tensor_address(name, buffers[name].data_ptr())
        for name in self._outputs:
            shape = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=self._dtypes[engine.get_tensor_dtype(name)], device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT failed to run the engine")
        stream.synchronize()
        # numpy has no bfloat16: such outputs come back as float32; every other dtype as it is
        return {
            name: (buffers[name].float() if buffers[name].dtype == torch.bfloat16 else buffers[name]).cpu().numpy()
            for name in self._outputs
        }
