"""``vlm-serve`` as an operator runs it: ready endpoints, clean shutdown, clear start-up failures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from client import VLMClient
from serving.launcher import ServerError, TritonServer, free_port, loopback_options
from tests.conftest import REPO_ROOT
from tests.images import encode, scene
from tests.reference import ClipReference, min_row_cosine


def _small_repository(model_repository: Path, target: Path, *, broken: bool) -> Path:
    """Only clip_similarity (quick to load); ``broken`` drops the file its initialize() reads."""
    shutil.copytree(model_repository / "clip_similarity", target / "clip_similarity")
    if broken:
        (target / "clip_similarity" / "1" / "similarity.json").unlink()
    return target


def _vlm_serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "serving.cli", "--host", "127.0.0.1", "--exit-timeout", "10", *args]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_vlm_serve_becomes_ready_and_stops_cleanly_on_a_signal(
    model_repository: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    repository = _small_repository(model_repository, tmp_path / "repo", broken=False)
    http_port = free_port()
    ports = ["--http-port", str(http_port), "--grpc-port", "0", "--metrics-port", "0"]
    log_file = tmp_path / "server.log"
    command = _vlm_serve("--repository", str(repository), "--log-file", str(log_file), *ports)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(5)]
        assert banner[0].startswith("tritonserver ready"), banner
        assert f"http://127.0.0.1:{http_port}" in banner[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "tritonserver stopped (exit code 0)" in out
    assert "Started HTTPService" in log_file.read_text()


def test_vlm_serve_names_a_taken_port_and_the_flag_to_change(model_repository: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            _vlm_serve("--repository", str(model_repository), "--http-port", str(port)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port} (--http-port) is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_vlm_serve_names_the_model_that_failed_to_load(model_repository: Path, tmp_path: Path) -> None:
    repository = _small_repository(model_repository, tmp_path / "repo", broken=True)
    ports = ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    result = subprocess.run(
        _vlm_serve("--repository", str(repository), "--log-file", str(tmp_path / "server.log"), *ports),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "models failed to load" in result.stderr
    assert "clip_similarity: " in result.stderr and "similarity.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_vlm_serve_refuses_a_repository_that_does_not_exist(tmp_path: Path) -> None:
    result = subprocess.run(
        _vlm_serve("--repository", str(tmp_path / "missing")), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "is not a folder" in result.stderr


def test_ctrl_c_during_start_up_stops_at_once(model_repository: Path, tmp_path: Path) -> None:
    """A server that never becomes live (a stand-in binary that only sleeps) must not hold Ctrl-C hostage."""
    never_live = tmp_path / "bin" / "tritonserver"
    never_live.parent.mkdir()
    never_live.write_text("#!/bin/sh\nexec sleep 600\n")
    never_live.chmod(0o755)
    ports = ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    command = _vlm_serve("--repository", str(model_repository), "--log-file", str(tmp_path / "log"), *ports)
    process = subprocess.Popen(
        command, env={**os.environ, "TRITONSERVER": str(never_live)}, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)  # let it reach the readiness loop; there is nothing to poll for here
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert "start-up interrupted" in err


def test_serving_only_some_models_skips_the_ones_not_exported(model_repository: Path, tmp_path: Path) -> None:
    """A repository where only CLIP's text path is exported (LLaVA's folders hold configs alone) serves it."""
    repository = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "model_repository", repository)  # configs only: nothing is exported
    for model in ("clip_tokenize", "clip_text"):
        shutil.rmtree(repository / model)
        shutil.copytree(model_repository / model, repository / model)
    options = loopback_options(repository, tmp_path / "server.log", exit_timeout_s=2, models=("clip_text_embed",))
    with TritonServer(options) as server:
        states = {m["name"]: m.get("state") for m in server.model_states()}
        with VLMClient(server.grpc_url) as client:
            assert client.embed_texts(["only text"]).shape[0] == 1
    assert states["clip_text_embed"] == states["clip_text"] == "READY"
    assert states["llava_decoder"] != "READY"


def test_a_model_name_the_repository_lacks_is_named(tmp_path: Path) -> None:
    options = loopback_options(
        REPO_ROOT / "model_repository", tmp_path / "server.log", exit_timeout_s=2, models=("no_such_model",)
    )
    with pytest.raises(ServerError) as caught, TritonServer(options):
        pass
    assert "no_such_model" in str(caught.value)


def test_each_family_serves_the_ensembles_the_checked_in_repository_tags_with_it() -> None:
    from serving.cli import options_from, parse_args

    args = parse_args(["--repository", str(REPO_ROOT / "model_repository"), "--family", "clip", "--family", "llava"])
    assert args.family == ["clip", "llava"]
    assert options_from(args).models == ("clip_image_embed", "clip_rank", "clip_text_embed", "llava")
    assert options_from(parse_args(["--repository", str(REPO_ROOT / "model_repository")])).models == ()


def test_a_family_the_repository_lacks_is_refused_naming_the_ones_it_holds(capsys: pytest.CaptureFixture[str]) -> None:
    from serving.cli import main

    assert main(["--repository", str(REPO_ROOT / "model_repository"), "--family", "siglip"]) == 1
    assert "holds no family 'siglip'; it holds: clip, llava" in capsys.readouterr().err


def test_a_named_model_serves_its_entry_ensembles_and_an_unknown_name_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serving.cli import main, options_from, parse_args

    repository = str(REPO_ROOT / "model_repository")
    options = options_from(parse_args(["--repository", repository, "--model", "llava", "--family", "clip"]))
    assert options.models == ("clip_image_embed", "clip_rank", "clip_text_embed", "llava", "llava_decoder")
    assert main(["--repository", repository, "--model", "nope"]) == 1
    assert "--model: the repository" in (err := capsys.readouterr().err) and "holds no model 'nope'" in err


def test_vlm_serve_reports_each_encoders_precision_and_serves_an_int8_export_within_its_budget(
    tiny_clip: Path, tmp_path: Path, reference: ClipReference
) -> None:
    """An int8 CLIP image path through vlm-serve: the banner names its encoder's precision, and the served
    embeddings stay within the int8 budget of Hugging Face float32's."""
    from export.cli import main as vlm_export

    exported = tmp_path / "exported"
    shutil.copytree(REPO_ROOT / "model_repository", exported)
    argv = ["clip", "--checkpoint", str(tiny_clip), "--repository", str(exported), "--precision", "int8"]
    assert vlm_export(argv) == 0
    repository = tmp_path / "repo"
    for model in ("clip_admission", "clip_preprocess", "clip_vision", "clip_image_embed"):
        shutil.copytree(exported / model, repository / model)
    grpc_port = free_port()
    ports = ["--http-port", "0", "--grpc-port", str(grpc_port), "--metrics-port", "0"]
    command = _vlm_serve("--repository", str(repository), "--log-file", str(tmp_path / "server.log"), *ports)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(6)]
        assert banner[0].startswith("tritonserver ready"), banner
        assert "  encoders clip_vision int8\n" in banner
        images = [scene(96, 80, seed=s) for s in range(3)]
        with VLMClient(f"127.0.0.1:{grpc_port}") as client:
            served = client.embed_images([encode(image, "PNG") for image in images])
        assert min_row_cosine(served, reference.image_embeds(images)) >= 0.99
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
