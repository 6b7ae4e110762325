"""vlm-probe, the check Docker and Kubernetes run: it sees a dead python stub that Triton's own readiness misses.

The server here runs without supervision (``--no-supervise``), as a container does when the orchestrator's
probes are the only recovery, and serves only CLIP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def unsupervised(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("probe")
    with ServeProcess(model_repository, folder, "--no-supervise", "--family", "clip") as serve:
        yield serve


def probe(serve: ServeProcess, kind: str, *families: str) -> tuple[int, str]:
    flags = [arg for family in families for arg in ("--family", family)]
    flags += ["--repository", str(serve.repository)]  # whose configs name the families and their probes
    result = subprocess.run(
        [sys.executable, "-m", "serving.probe", kind, "--url", serve.grpc_url, "--timeout", "20", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_healthy_server_passes_both_probes(unsupervised: ServeProcess) -> None:
    for kind in ("ready", "live"):
        code, output = probe(unsupervised, kind, "clip")
        assert code == 0, output
        assert "clip (clip_rank): answered in" in output


def test_a_family_the_server_does_not_serve_fails_readiness_but_not_liveness(unsupervised: ServeProcess) -> None:
    code, output = probe(unsupervised, "ready", "clip", "llava")
    assert code == 1 and "llava (llava): not ready" in output
    assert probe(unsupervised, "live", "clip", "llava")[0] == 0


def test_the_probe_finds_every_family_and_its_probe_in_the_repository_and_names_what_it_lacks(
    unsupervised: ServeProcess,
) -> None:
    code, output = probe(unsupervised, "live")  # no --family: every family the repository's configs name
    assert code == 0, output
    assert "clip (clip_rank): answered in" in output and "siglip (siglip_rank): not ready" in output
    assert "llava (llava): not ready" in output and "llava_next (llava_next): not ready" in output
    code, output = probe(unsupervised, "ready", "gemma")
    assert code == 2 and "holds no family 'gemma'; it holds: clip, llava, llava_next, siglip, siglip2" in output


def test_a_dead_stub_fails_both_probes_while_triton_still_says_ready(unsupervised: ServeProcess) -> None:
    # Last: it leaves the module's server with a dead stub.
    for tokenizer in unsupervised.stubs("clip_tokenize"):  # every instance, so no request finds a live one
        os.kill(tokenizer.pid, signal.SIGKILL)
    with urllib.request.urlopen(f"http://{unsupervised.http_url}/v2/health/ready", timeout=10) as response:
        assert response.status == 200  # Triton 2.51: the model and the server stay READY
    for kind in ("ready", "live"):
        code, output = probe(unsupervised, kind, "clip")
        assert code == 1, output
        assert re.search(r"clip_tokenize_0_\d' is not healthy", output), output
