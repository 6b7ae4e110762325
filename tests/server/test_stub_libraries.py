"""The running server's python-backend stubs: only the decoders' have torch loaded (the tokenizer, the image
preprocessors, the similarity model and the embedded encoders run without it: their memory is their own), and the
encoders compute at a lower CPU priority than Triton's own threads and the light steps."""

from __future__ import annotations

import psutil

from serving.launcher import TritonServer
from serving.triton_models.onnx_encoder import ENCODER_NICENESS


def stubs_by_model(server: TritonServer) -> dict[str, list[psutil.Process]]:
    """Model name -> its instances' stub processes (each stub is started with its model.py path)."""
    assert server.process is not None
    stubs: dict[str, list[psutil.Process]] = {}
    for child in psutil.Process(server.process.pid).children(recursive=True):
        for argument in child.cmdline():
            if argument.endswith("/1/model.py"):
                stubs.setdefault(argument.split("/")[-3], []).append(child)
    return stubs


def maps_torch(process: psutil.Process) -> bool:
    return any("libtorch" in region.path for region in process.memory_maps())


def is_decoder(model: str) -> bool:
    return model.endswith("_decoder")  # every VLM's decoder is named <checkpoint>_decoder (export/families)


def test_no_stub_but_the_decoders_has_torch_loaded(server: TritonServer) -> None:
    stubs = stubs_by_model(server)
    assert {"clip_tokenize", "clip_preprocess", "clip_text", "clip_vision", "llava_decoder"} <= set(stubs)
    decoders = [model for model in stubs if is_decoder(model)]
    assert len(decoders) >= 2  # llava's and llava_next's
    assert all(maps_torch(process) for model in decoders for process in stubs[model])  # the check sees torch
    with_torch = sorted(
        model for model, processes in stubs.items() if not is_decoder(model) and any(map(maps_torch, processes))
    )
    assert with_torch == []


def thread_niceness(process: psutil.Process) -> dict[int, int]:
    """Thread id -> its nice value (a per-thread attribute on Linux)."""
    return {thread.id: psutil.Process(thread.id).nice() for thread in process.threads()}


def test_encoders_compute_at_a_lower_priority_than_triton_and_the_light_steps(server: TritonServer) -> None:
    stubs = stubs_by_model(server)
    for encoder in ("clip_vision", "clip_text", "llava_vision", "llava_projector"):
        for process in stubs[encoder]:
            niceness = thread_niceness(process)
            assert niceness[process.pid] == ENCODER_NICENESS, (encoder, niceness)  # execute() and ONNX Runtime
            assert sum(value == ENCODER_NICENESS for value in niceness.values()) >= 2, (encoder, niceness)
    for light in ("clip_preprocess", "llava_preprocess", "clip_tokenize", "clip_similarity"):
        for process in stubs[light]:
            assert set(thread_niceness(process).values()) == {0}, light
    assert server.process is not None
    assert set(thread_niceness(psutil.Process(server.process.pid)).values()) == {0}
