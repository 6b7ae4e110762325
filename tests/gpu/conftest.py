"""GPU tests: each module states what it needs with a marker, and is skipped, with the reason, where that is
missing. ``cuda``: torch sees a CUDA GPU. ``tensorrt``: TensorRT's Python package (it installs from NVIDIA's
own index, so on CPU hosts it is absent; docker/Dockerfile has it). ``ngc_server``: the NGC tritonserver with
its tensorrt backend (``/opt/tritonserver``), which serves the ``gpu`` target."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

NGC_TENSORRT_BACKEND = Path("/opt/tritonserver/backends/tensorrt")


def _cuda_missing() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return f"no CUDA GPU visible to torch {torch.__version__}"
    return None


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT's Python package is not installed (NVIDIA's index; see docker/Dockerfile)"
    return None


def _ngc_server_missing() -> str | None:
    if not NGC_TENSORRT_BACKEND.is_dir():
        return f"no NGC tritonserver with a tensorrt backend ({NGC_TENSORRT_BACKEND} is missing)"
    return None


REQUIREMENTS = {"cuda": _cuda_missing, "tensorrt": _tensorrt_missing, "ngc_server": _ngc_server_missing}


def pytest_configure(config: pytest.Config) -> None:
    for name in REQUIREMENTS:
        config.addinivalue_line("markers", f"{name}: a GPU test that needs {name} (skipped without it)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing: dict[str, str | None] = {}
    for item in items:
        reasons = []
        for name, check in REQUIREMENTS.items():
            if item.get_closest_marker(name) is not None:
                if name not in missing:
                    missing[name] = check()
                reasons += [missing[name]] if missing[name] else []
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))
