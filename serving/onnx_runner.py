"""An ONNX Runtime session with explicit thread counts, used in-process and inside the python backend."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np
import onnxruntime as ort

# A provider's name, or its name and options (ONNX Runtime takes either).
Provider = str | tuple[str, dict[str, str]]


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build and host have it, CPU otherwise: same code on both."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxRunner:
    """Lazily opened session; use as a context manager or call ``open()`` once."""

    def __init__(
        self,
        path: Path,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        providers: list[Provider] | None = None,
    ) -> None:
        self.path = Path(path)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.providers: list[Provider] = providers or list(default_providers())
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def open(self) -> OnnxRunner:
        if self._session is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.intra_op_threads
            options.inter_op_num_threads = self.inter_op_threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle intra-op threads would spin on cores that other models' instances need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(self.path), options, providers=self.providers)
            self._output_names = [output.name for output in self._session.get_outputs()]
        return self

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> OnnxRunner:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.open()._session
        return dict(zip(self._output_names, session.run(self._output_names, feeds), strict=True))
