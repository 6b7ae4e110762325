"""An exported encoder (``clip_vision``, ``clip_text``) in the python backend: the ``embedded`` target.

Triton's dynamic batcher hands ``execute`` several requests; they are validated one by one (a bad
request fails alone), concatenated, run as one ONNX Runtime call and split back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.errors import InvalidInputError
from serving.manifest import ONNX_FILE, ComponentManifest
from serving.onnx_runner import OnnxRunner
from serving.triton_models.base import PythonModel
from serving.validators import require_dtype, require_finite, require_range, require_shape


class OnnxEncoder(PythonModel):
    def setup(self) -> None:
        self.manifest = ComponentManifest.read(self.artifacts)
        self.runner = OnnxRunner(
            self.artifacts / ONNX_FILE,
            intra_op_threads=self.int_parameter("intra_op_thread_count", default=1),
            inter_op_threads=self.int_parameter("inter_op_thread_count", default=1),
        ).open()

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Triton has checked dtypes, ranks and equal batch sizes; the checkpoint's sizes and values are ours."""
        for tensor in self.manifest.inputs:
            array = inputs[tensor.name]
            require_dtype(tensor.name, array.dtype, tensor.dtype)
            require_shape(tensor.name, array.shape, [-1, *tensor.shape])
            if not self.response_cache:  # Triton 2.51 would cache the error as an empty success (specs say more)
                require_finite(tensor.name, array)
            if tensor.value_range is not None:
                require_range(tensor.name, array, *tensor.value_range)
        return inputs

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        valid: list[tuple[int, dict[str, np.ndarray]]] = []
        for index, request in enumerate(requests):
            try:
                valid.append((index, self.validate(self.read_inputs(request))))
            except InvalidInputError as error:
                responses[index] = self.invalid_response(error)
        if not valid:
            return responses
        feeds = {t.name: np.concatenate([inputs[t.name] for _, inputs in valid]) for t in self.manifest.inputs}
        try:
            outputs = self.runner.run(feeds)
        except Exception:
            for index, _ in valid:
                responses[index] = self.internal_error_response()
            return responses
        start = 0
        for index, inputs in valid:
            end = start + next(iter(inputs.values())).shape[0]
            responses[index] = self.ok_response({name: value[start:end] for name, value in outputs.items()})
            start = end
        return responses
