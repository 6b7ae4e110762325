"""Which ONNX Runtime execution providers a python-backend step runs its ONNX graph on, from its config parameters.

Without ``execution_provider`` (the embedded and cpu targets' configs) the answer is None: the runner's default,
exactly as before. With ``execution_provider: tensorrt`` (the GPU targets' configs, export/triton_config.py) the
session gets TensorRT first, with every ``trt_*`` parameter of the config as a provider option (precision, workspace,
engine and timing caches) and the optimisation profile from the export's ``patch_profile.json``; then CUDA, then the
CPU, as ONNX Runtime places what a provider before cannot run. A provider this onnxruntime build lacks is left out
with a warning, so a GPU config on a CPU-only build still serves, on the CPU.

Pure: it is handed the providers the build has (``onnxruntime.get_available_providers()``), so tests need no GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from serving.onnx_runner import Provider
from serving.patch_profile import PROFILE_FILE, PatchProfile

EXECUTION_PROVIDER = "execution_provider"  # the config parameter that selects the GPU path
TENSORRT = "tensorrt"
TENSORRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
PROFILE_OPTIONS = {which: f"trt_profile_{which}_shapes" for which in ("min", "opt", "max")}
_log = logging.getLogger(__name__)


def tensorrt_options(parameters: Mapping[str, str], profile: PatchProfile, device_id: int) -> dict[str, str]:
    """The TensorRT provider's options: the config's ``trt_*`` parameters, the device and the profile's shapes."""
    options = {key: value for key, value in parameters.items() if key.startswith("trt_")}
    clashes = sorted(set(options) & set(PROFILE_OPTIONS.values()))
    if clashes:
        raise ValueError(f"{', '.join(clashes)}: the profile comes from the export's {PROFILE_FILE}, not the config")
    options.update({option: profile.shapes(which) for which, option in PROFILE_OPTIONS.items()})
    options["device_id"] = str(device_id)
    return options


def session_providers(
    parameters: Mapping[str, str], profile: PatchProfile | None, available: Sequence[str], device_id: int = 0
) -> list[Provider] | None:
    """None: the runner's default providers. Otherwise TensorRT (with ``profile``), CUDA and the CPU, those this build
    has; ``profile`` may be None only when no execution provider is configured."""
    selected = parameters.get(EXECUTION_PROVIDER)
    if selected is None:
        return None
    if selected != TENSORRT:
        raise ValueError(f"{EXECUTION_PROVIDER} must be {TENSORRT!r} or left out, got {selected!r}")
    if profile is None:
        raise ValueError(f"{EXECUTION_PROVIDER} {TENSORRT}: the export's patch profile is needed")
    wanted: list[Provider] = [
        (TENSORRT_PROVIDER, tensorrt_options(parameters, profile, device_id)),
        (CUDA_PROVIDER, {"device_id": str(device_id)}),
        CPU_PROVIDER,
    ]
    chosen = [provider for provider in wanted if _name(provider) in available or provider == CPU_PROVIDER]
    missing = [_name(provider) for provider in wanted if provider not in chosen]
    if missing:
        _log.warning("this onnxruntime build lacks %s: the graph runs on %s", ", ".join(missing), _name(chosen[0]))
    return chosen


def _name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]
