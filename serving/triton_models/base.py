"""What every python-backend model shares: parameters, its artifact folder and safe error responses.

``triton_python_backend_utils`` exists only inside Triton's stub process, so it is imported when a model
is initialised, never at module import (unit tests import these modules without a server).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from serving.admission import ORDERING_INPUT
from serving.errors import InvalidInputError, busy_message
from serving.validators import positive_int


def load_backend_utils() -> Any:
    import triton_python_backend_utils as pb_utils

    return pb_utils


class PythonModel:
    """Subclasses implement ``setup()`` and ``handle(inputs) -> outputs`` (dicts of numpy arrays)."""

    input_names: tuple[str, ...] = ()
    device_id: int = 0  # the GPU of a KIND_GPU instance (Triton's model_instance_device_id)

    def initialize(self, args: dict[str, str]) -> None:
        self.pb = load_backend_utils()
        config = json.loads(args["model_config"])
        self.model_name = args["model_name"]
        self.parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.artifacts = Path(args["model_repository"]) / args["model_version"]
        self.device_id = int(args.get("model_instance_device_id") or 0)
        self.input_names = tuple(entry["name"] for entry in config["input"])
        self.response_cache = bool(config.get("response_cache", {}).get("enable", False))
        self.setup()

    def setup(self) -> None:
        """Load artifacts; runs once per instance."""

    def int_parameter(self, name: str, default: int | None = None) -> int:
        """A positive-integer config parameter; without a default it must be in the config."""
        if name not in self.parameters and default is not None:
            return default
        return positive_int(name, self.parameters[name])

    def handle(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self.respond(request) for request in requests]

    def read_inputs(self, request: Any) -> dict[str, np.ndarray]:
        inputs = {}
        for name in self.input_names:
            if name == ORDERING_INPUT:  # it only orders the steps: never read, never copied
                continue
            tensor = self.pb.get_input_tensor_by_name(request, name)
            if tensor is not None:
                inputs[name] = tensor.as_numpy()
        return inputs

    def respond(self, request: Any) -> Any:
        try:
            return self.ok_response(self.handle(self.read_inputs(request)))
        except InvalidInputError as error:
            return self.invalid_response(error)
        except Exception:
            return self.internal_error_response()

    def ok_response(self, outputs: dict[str, np.ndarray]) -> Any:
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(k, v) for k, v in outputs.items()])

    def invalid_response(self, error: InvalidInputError) -> Any:
        message = error.wire_message()  # the field travels as data: client.field_errors
        return self.pb.InferenceResponse(error=self.pb.TritonError(message, self.pb.TritonError.INVALID_ARG))

    def busy_response(self, reason: str) -> Any:
        message = busy_message(self.model_name, reason)
        return self.pb.InferenceResponse(error=self.pb.TritonError(message, self.pb.TritonError.UNAVAILABLE))

    def internal_error_response(self) -> Any:
        """Call from an ``except`` block: the client gets no internals, the server log gets the traceback."""
        self.pb.Logger.log_error(f"{self.model_name}: {traceback.format_exc()}")
        message = f"{self.model_name}: internal error"
        return self.pb.InferenceResponse(error=self.pb.TritonError(message, self.pb.TritonError.INTERNAL))
