"""In the running server, only the decoder's python-backend stub has torch loaded: the tokenizer, the image
preprocessors, the similarity model and the embedded encoders run without it (their memory is their own)."""

from __future__ import annotations

import psutil

from serving.launcher import TritonServer


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


def test_no_stub_but_the_decoders_has_torch_loaded(server: TritonServer) -> None:
    stubs = stubs_by_model(server)
    assert {"clip_tokenize", "clip_preprocess", "clip_text", "clip_vision", "llava_decoder"} <= set(stubs)
    assert all(maps_torch(process) for process in stubs["llava_decoder"])  # the check sees torch where it is
    with_torch = sorted(
        model for model, processes in stubs.items() if model != "llava_decoder" and any(map(maps_torch, processes))
    )
    assert with_torch == []
