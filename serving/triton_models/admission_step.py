"""The first step of every ensemble a client calls: it admits a request (a ticket the other steps wait for) or
refuses it as busy before any step has read it (serving/admission.py). One model per checkpoint serves all of its
ensembles; which ensemble a request came through is the output it asks for, and each has its own marks. Python
backend 2.51's tensors tell no shape without ``as_numpy``, so counting a request's images copies their bytes."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from serving.admission import ADMISSION_PARAMETER, Gate
from serving.queue_watch import METRICS_URL_ENVIRONMENT, QueueWatch
from serving.triton_models.base import PythonModel

TICKET = np.zeros((1, 1), dtype=np.int64)


class AdmissionStep(PythonModel):
    def setup(self) -> None:
        # One reader shared by every gate, in a thread of its own: no request waits for a read.
        queues = QueueWatch(os.environ.get(METRICS_URL_ENVIRONMENT), background=True)
        plans = json.loads(self.parameters[ADMISSION_PARAMETER])
        self.gates = {output: Gate.from_plan(plan, queues) for output, plan in plans.items()}

    def respond(self, request: Any) -> Any:
        outputs = request.requested_output_names()
        gates = [self.gates[output] for output in outputs if output in self.gates]
        counts = self._counts(request, frozenset().union(*(gate.counted for gate in gates)))
        reason = next((refusal for gate in gates if (refusal := gate.refusal(counts))), None)
        if reason is not None:
            return self.busy_response(reason)
        return self.ok_response({output: TICKET for output in outputs})

    def _counts(self, request: Any, names: frozenset[str]) -> dict[str, int]:
        """How many elements (images, videos) each of ``names`` carries; the other inputs are only there so that
        Triton schedules the step, and are never read."""
        counts = {}
        for name in names:
            tensor = self.pb.get_input_tensor_by_name(request, name)
            counts[name] = 0 if tensor is None else int(tensor.as_numpy().size)
        return counts
