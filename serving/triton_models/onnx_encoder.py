"""An exported encoder (``clip_vision``, ``clip_text``) in the python backend: the ``embedded`` target.

Triton's dynamic batcher hands ``execute`` several requests; they are validated one by one (a bad
request fails alone), concatenated, run as one ONNX Runtime call and split back. Inputs with a dynamic axis
(``clip_text``'s sequence length) allow ragged batches in this target's config, so requests of different
lengths arrive together: each is padded to the batch's longest with the input's pad value (token ids with
the pad token, the attention mask with 0). The text encoder's attention is causal and it pools at the first
end-of-text token, so trailing padding leaves every text's embedding as it is alone (up to float rounding).

This process imports numpy and onnxruntime, not torch or transformers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from serving.allocator import return_large_blocks
from serving.errors import InvalidInputError
from serving.manifest import ONNX_FILE, ComponentManifest, TensorManifest
from serving.onnx_runner import OnnxRunner
from serving.triton_models.base import PythonModel
from serving.validators import require_dtype, require_finite, require_range, require_shape

# The encoders' matrix work yields the CPU to everything else in the server: Triton's frontends and schedulers, the
# light steps (preprocessing, tokenizing) and so the refusal of a request past a full queue, which otherwise waited
# behind an encoder batch (10x burst on CLIP ViT-B/32: refusals p50 53 -> 32 ms). Nice values are per thread on
# Linux and inherited: set on the stub's main thread before ONNX Runtime starts its pool.
ENCODER_NICENESS = 10


def pad_to(array: np.ndarray, tensor: TensorManifest, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` [b, *item] padded at the end of each dynamic axis up to ``shape`` (per item)."""
    if array.shape[1:] == shape:
        return array
    widths = [(0, 0), *((0, want - have) for have, want in zip(array.shape[1:], shape, strict=True))]
    return np.pad(array, widths, constant_values=tensor.pad_value)


class OnnxEncoder(PythonModel):
    def setup(self) -> None:
        self.manifest = ComponentManifest.read(self.artifacts)
        # Large blocks go back to the system when freed (serving.allocator), so the heap does not keep the buffers
        # of every batch shape seen; ONNX Runtime's arena keeps reusing its own (without it, every run of a new
        # shape faults in fresh pages: 1.8x the time per text at varying batch shapes, in process).
        return_large_blocks()
        os.setpriority(os.PRIO_PROCESS, 0, ENCODER_NICENESS)
        self.runner = OnnxRunner(
            self.artifacts / ONNX_FILE,
            intra_op_threads=self.int_parameter("intra_op_thread_count", default=1),
            inter_op_threads=self.int_parameter("inter_op_thread_count", default=1),
        ).open()

    def validate(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Triton has checked dtypes, ranks and equal batch sizes; the checkpoint's sizes and values are ours."""
        lengths: dict[str, tuple[str, int]] = {}  # dynamic axis -> (the first input that has it, its size)
        for tensor in self.manifest.inputs:
            array = inputs[tensor.name]
            require_dtype(tensor.name, array.dtype, tensor.dtype)
            require_shape(tensor.name, array.shape, [-1, *tensor.shape])
            for axis, position in tensor.dynamic_axes.items():
                size = array.shape[1 + position]
                largest = tensor.max_shape[position] if tensor.max_shape else size
                if not 1 <= size <= largest:
                    raise InvalidInputError(tensor.name, f"{axis} must be 1 to {largest} long, got {size}")
                first, expected = lengths.setdefault(axis, (tensor.name, size))
                if size != expected:
                    raise InvalidInputError(tensor.name, f"{axis} is {size} long, {first}'s is {expected}")
            if not self.response_cache:  # Triton 2.51 would cache the error as an empty success (specs say more)
                require_finite(tensor.name, array)
            if tensor.value_range is not None:
                require_range(tensor.name, array, *tensor.value_range)
        return inputs

    def encode(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Validated requests' inputs -> their outputs, in one ONNX Runtime call (padded to the longest)."""
        feeds = {}
        for tensor in self.manifest.inputs:
            arrays = [inputs[tensor.name] for inputs in batch]
            if tensor.dynamic_axes:
                shape = tuple(max(sizes) for sizes in zip(*(a.shape[1:] for a in arrays), strict=True))
                arrays = [pad_to(a, tensor, shape) for a in arrays]
            feeds[tensor.name] = np.concatenate(arrays)
        outputs = self.runner.run(feeds)
        results, start = [], 0
        for inputs in batch:
            end = start + next(iter(inputs.values())).shape[0]
            results.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        return results

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
        try:
            results = self.encode([inputs for _, inputs in valid])
        except Exception:
            for index, _ in valid:
                responses[index] = self.internal_error_response()
            return responses
        for (index, _), outputs in zip(valid, results, strict=True):
            responses[index] = self.ok_response(outputs)
        return responses
