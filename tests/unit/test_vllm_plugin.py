"""serving.generation.vllm_plugin: registered as a vLLM general plugin, and in a process where the decoder asked for
it, vLLM's shared-memory queue readers nap instead of spinning on sched_yield. Each check runs in a fresh Python, as
vLLM's own processes do, so the patch never leaks into this one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

from serving.generation.vllm_plugin import NO_BUSY_WAIT_ENV

READER = textwrap.dedent(
    """
    import os, time, zmq
    from vllm.distributed.device_communicators import shm_broadcast
    from serving.generation.vllm_plugin import register

    original = shm_broadcast.SpinCondition.wait
    register()
    register()  # vLLM may load a plugin twice in one process
    def spin():
        raise AssertionError("the reader spun")
    shm_broadcast.sched_yield = spin
    reader = shm_broadcast.SpinCondition(True, zmq.Context(), f"ipc:///tmp/vlm-test-{os.getpid()}")
    start = time.monotonic()
    try:
        reader.wait(timeout_ms=1000)  # within a second of its last read: vLLM busy-waits here
        print("napped", time.monotonic() - start < 0.5, shm_broadcast.SpinCondition.wait.__wrapped__ is original)
    except AssertionError as error:
        print(error)
    """
)


def run_reader(no_busy_wait: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != NO_BUSY_WAIT_ENV}
    if no_busy_wait is not None:
        env[NO_BUSY_WAIT_ENV] = no_busy_wait
    done = subprocess.run([sys.executable, "-c", READER], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_plugin_is_registered_as_a_vllm_general_plugin() -> None:
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins["triton_vlm_no_busy_wait"] == "serving.generation.vllm_plugin:register"


def test_asked_for_a_reader_naps_briefly_instead_of_spinning_and_is_patched_once() -> None:
    assert run_reader("1") == "napped True True"


def test_not_asked_for_vllm_keeps_its_spin() -> None:
    assert run_reader(None) == "the reader spun"
    assert run_reader("0") == "the reader spun"


EMBEDS = textwrap.dedent(
    """
    import torch
    from vllm.model_executor.models.llava_next import LlavaNextImageEmbeddingInputs
    from serving.generation.vllm_plugin import allow_varying_image_embeds

    images = [torch.zeros(52, 64), torch.zeros(56, 64)]  # two image sizes' packed embeddings in one batch
    try:
        LlavaNextImageEmbeddingInputs(type="image_embeds", data=images)
        print("accepted before")
    except ValueError as error:
        print("refused before:", "inconsistent shapes" in str(error))
    allow_varying_image_embeds()
    LlavaNextImageEmbeddingInputs(type="image_embeds", data=images)
    try:
        LlavaNextImageEmbeddingInputs(type="image_embeds", data=[torch.zeros(52, 64), torch.zeros(56, 32)])
    except ValueError:
        print("accepted after; another hidden size still refused")
    """
)


def test_llava_next_image_embeddings_of_different_lengths_share_a_batch_once_registered() -> None:
    done = subprocess.run([sys.executable, "-c", EMBEDS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-2:] == [
        "refused before: True",
        "accepted after; another hidden size still refused",
    ]
