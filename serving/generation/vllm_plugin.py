"""A vLLM general plugin (entry point ``vllm.general_plugins`` in pyproject.toml): vLLM loads it in each of its
processes (the decoder's stub, the engine core, the workers), which this project cannot otherwise reach.

LLaVA-NeXT's image embeddings vary in length with the image's size, but vLLM 0.32's schema for them
(``LlavaNextImageEmbeddingInputs``) wants every image of an encoder batch to have the same length: two images of
different sizes in one request, or in two requests scheduled together, failed the worker ("data contains
inconsistent shapes: torch.Size([52, 64]) (index 0) vs torch.Size([56, 64]) (index 1)") and killed the engine. The
model itself takes a list of any lengths (it hands the embeddings on as they are), so the plugin marks the length
as varying, as vLLM's schemas do for other per-item sizes.

On CPU hosts the decoder asks it to make vLLM's shared-memory queues between the engine core and its worker nap
instead of spinning. A reader there busy-waits on ``sched_yield`` for a second after each read, so while a sequence
decodes, the engine core and the worker are both always runnable: on a 2-core host the server's clients then waited
seconds for a CPU (1.5 s measured, 5.8 s in the test suite) and cancelled their streams only after the streams had
ended. Napping keeps the reader polling the queue (vLLM's idle-mode wake-up by notification lost wake-ups when used
for every read: a decode then stalled) but leaves the CPU to others meanwhile.

The decoder also asks it to tie each of vLLM's processes to its parent (``serving.parent_death``): the engine core
starts its workers itself, beyond the reach of the stub's spawn wrapper, and after a killed stub they were seen
living on as orphans (about 1.1 GB each on CPU). vLLM starts them from its engine core's main thread, which lives as
long as the engine core, so the parent-death signal follows the process.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from serving.parent_death import die_with_multiprocessing_parent

NO_BUSY_WAIT_ENV = "VLM_VLLM_NO_BUSY_WAIT"  # "1": set by the decoder before it starts vLLM, inherited by its children
DIE_WITH_PARENT_ENV = "VLM_VLLM_DIE_WITH_PARENT"  # "1": set by the decoder, inherited by vLLM's processes
NAP_S = 0.0001  # a tenth of a millisecond: 2-3 % of a decode step of the tiny test model


def register() -> None:
    """The entry point. Naps only where the decoder set ``NO_BUSY_WAIT_ENV`` (``vllm serve`` spins as it does), and
    dies with its parent only where it set ``DIE_WITH_PARENT_ENV``."""
    if os.environ.get(DIE_WITH_PARENT_ENV) == "1":
        die_with_multiprocessing_parent()
    allow_varying_image_embeds()
    if os.environ.get(NO_BUSY_WAIT_ENV) != "1":
        return
    from vllm.distributed.device_communicators import shm_broadcast

    spin = shm_broadcast.SpinCondition
    if getattr(spin, "_vlm_naps", False):  # vLLM may load plugins more than once per process
        return
    original = spin.wait

    @functools.wraps(original)
    def wait(self: Any, timeout_ms: int | None = None) -> None:
        if self.is_reader and time.monotonic() <= self.last_read + self.busy_loop_s:
            time.sleep(NAP_S)  # where vLLM would sched_yield() and stay runnable
            return
        original(self, timeout_ms)

    spin.wait = wait
    spin._vlm_naps = True


def allow_varying_image_embeds() -> None:
    """LLaVA-NeXT's image embeddings ``[images, tokens, hidden]`` may differ in ``tokens`` from image to image."""
    from typing import Annotated

    import torch
    from vllm.model_executor.models import llava_next
    from vllm.utils.tensor_schema import TensorShape

    schema = llava_next.LlavaNextImageEmbeddingInputs
    schema.__annotations__["data"] = Annotated[
        torch.Tensor | list[torch.Tensor], TensorShape("bn", "ifs", "hs", dynamic_dims={"ifs"})
    ]
