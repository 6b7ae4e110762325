"""serving.launcher, the parts that need no running server: ports, install discovery, command, environment."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving import launcher
from serving.launcher import (
    ServerError,
    ServerOptions,
    TritonInstall,
    TritonServer,
    find_tritonserver,
    free_port,
    port_is_free,
)

HOST = "127.0.0.1"


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port that a listening socket holds for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def fake_install(tmp_path: Path) -> TritonInstall:
    """An NGC-style layout (no stub to copy): nothing is copied outside tmp_path."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tritonserver").write_bytes(b"")
    (tmp_path / "backends" / "python").mkdir(parents=True)
    (tmp_path / "caches").mkdir()
    return TritonInstall(tmp_path / "bin" / "tritonserver", tmp_path / "backends", tmp_path / "caches")


@pytest.fixture
def no_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Look only for the wheel: no $TRITONSERVER, no NGC install."""
    monkeypatch.delenv("TRITONSERVER", raising=False)
    monkeypatch.setattr(launcher, "NGC_HOME", tmp_path / "no-ngc-here")


def options(tmp_path: Path, **overrides: object) -> ServerOptions:
    base = {"repository": tmp_path / "repo", "host": HOST, "log_file": tmp_path / "server.log"}
    return ServerOptions(**{**base, **overrides})


# Ports


def test_free_port_returns_a_port_that_can_be_bound() -> None:
    port = free_port(HOST)
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, port))
        assert sock.getsockname()[1] == port


def test_port_is_free_is_true_for_an_unused_port() -> None:
    assert port_is_free(HOST, free_port(HOST)) is True


def test_port_is_free_is_false_while_a_socket_holds_the_port(held_port: int) -> None:
    assert port_is_free(HOST, held_port) is False


def test_port_is_free_is_true_again_once_the_socket_is_closed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert port_is_free(HOST, port) is False
    assert port_is_free(HOST, port) is True


@pytest.mark.parametrize(
    ("label", "flag"),
    [("http_port", "--http-port"), ("grpc_port", "--grpc-port"), ("metrics_port", "--metrics-port")],
)
def test_a_taken_port_raises_a_server_error_naming_its_flag(
    tmp_path: Path, held_port: int, label: str, flag: str
) -> None:
    ports = {"http_port": 0, "grpc_port": 0, "metrics_port": 0, label: held_port}
    server = TritonServer(options(tmp_path, **ports))
    with pytest.raises(ServerError) as caught:
        server._resolve_ports()
    message = str(caught.value)
    assert f"port {held_port} ({flag}) is already in use" in message
    assert f"pass {flag} 0" in message


def test_port_zero_is_replaced_by_free_ports(tmp_path: Path) -> None:
    opts = options(tmp_path, http_port=0, grpc_port=0, metrics_port=0)
    TritonServer(opts)._resolve_ports()
    for port in (opts.http_port, opts.grpc_port, opts.metrics_port):
        assert port > 0
        assert port_is_free(HOST, port)


def test_free_explicit_ports_are_kept(tmp_path: Path) -> None:
    chosen = free_port(HOST)
    opts = options(tmp_path, http_port=chosen, grpc_port=0, metrics_port=0)
    server = TritonServer(opts)
    server._resolve_ports()
    assert opts.http_port == chosen
    assert server.http_url == f"{HOST}:{chosen}"


def test_urls_use_loopback_when_the_server_binds_every_address(tmp_path: Path) -> None:
    server = TritonServer(options(tmp_path, host="0.0.0.0", http_port=1, grpc_port=2, metrics_port=3))
    assert server.http_url == "127.0.0.1:1"
    assert server.grpc_url == "127.0.0.1:2"
    assert server.metrics_url == "http://127.0.0.1:3/metrics"


# Finding the server


def test_find_tritonserver_finds_the_nvidia_pytriton_wheel(no_override: None) -> None:
    install = find_tritonserver()
    assert install.binary.is_file()
    assert install.binary.name == "tritonserver"
    assert (install.backends / "python").is_dir()
    assert install.python_stub is not None and install.python_stub.is_file()
    assert install.python_stub.parent.name == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert install.library_path is not None and install.library_path.name == "nvidia_pytriton.libs"


def test_the_tritonserver_variable_wins_when_it_names_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "tritonserver"
    binary.parent.mkdir()
    binary.write_bytes(b"")
    monkeypatch.setenv("TRITONSERVER", str(binary))
    install = find_tritonserver()
    assert install.binary == binary
    assert install.backends == tmp_path / "backends"
    assert install.caches is None  # no caches/ folder there
    assert install.python_stub is None


def test_a_tritonserver_variable_that_names_no_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRITONSERVER", str(tmp_path / "missing"))
    with pytest.raises(ServerError, match="is not a file"):
        find_tritonserver()


# Start-up

CRASHING_SERVER = """#!/bin/sh
echo started >> "$(dirname "$0")/starts"
echo "{message}"
exit 134
"""


def crashing_server(tmp_path: Path, message: str) -> Path:
    """A stand-in tritonserver that dies during start-up, printing ``message``, and counts its starts."""
    binary = tmp_path / "install" / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_text(CRASHING_SERVER.format(message=message))
    binary.chmod(0o755)
    (tmp_path / "repo").mkdir()
    return binary


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("message", "starts"),
    [
        (
            "terminate called after throwing an instance of 'boost::interprocess::lock_exception'",
            launcher.STARTUP_RACE_RETRIES + 1,
        ),
        ("error: creating server: Invalid argument", 1),
    ],
)
def test_only_a_start_up_that_died_of_tritons_start_up_race_is_tried_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, message: str, starts: int
) -> None:
    binary = crashing_server(tmp_path, message)
    monkeypatch.setenv("TRITONSERVER", str(binary))
    with pytest.raises(ServerError, match="exited during start-up") as failed:
        TritonServer(options(tmp_path, http_port=0, grpc_port=0, metrics_port=0)).start()
    assert message in str(failed.value)
    assert (binary.parent / "starts").read_text().split() == ["started"] * starts


# Command line


def test_command_selects_the_target_config_and_keeps_running_on_model_errors(
    tmp_path: Path, fake_install: TritonInstall
) -> None:
    command = TritonServer(options(tmp_path, target="gpu", http_port=18000)).command(
        fake_install, fake_install.backends
    )
    assert command[0] == str(fake_install.binary)
    assert "--model-config-name=gpu" in command
    assert "--exit-on-error=false" in command
    assert f"--model-repository={(tmp_path / 'repo').resolve()}" in command
    assert f"--backend-directory={fake_install.backends}" in command
    assert "--http-port=18000" in command


def test_command_enables_the_response_cache_when_it_has_a_size(tmp_path: Path, fake_install: TritonInstall) -> None:
    command = TritonServer(options(tmp_path, cache_size_bytes=1024)).command(fake_install, fake_install.backends)
    assert "--cache-config=local,size=1024" in command
    assert f"--cache-directory={fake_install.caches}" in command


def test_command_has_no_cache_flags_when_the_cache_size_is_zero(tmp_path: Path, fake_install: TritonInstall) -> None:
    command = TritonServer(options(tmp_path, cache_size_bytes=0)).command(fake_install, fake_install.backends)
    assert not [arg for arg in command if arg.startswith("--cache")]


def test_command_appends_extra_arguments_last(tmp_path: Path, fake_install: TritonInstall) -> None:
    command = TritonServer(options(tmp_path, extra_args=["--log-info=true", "--strict-readiness=true"])).command(
        fake_install, fake_install.backends
    )
    assert command[-2:] == ["--log-info=true", "--strict-readiness=true"]


def test_command_with_the_wheel_uses_a_backend_copy_holding_the_stub(tmp_path: Path, no_override: None) -> None:
    install = find_tritonserver()
    server = TritonServer(options(tmp_path))
    try:
        command = server.command(install, server.prepare_backends(install))
        [backend_arg] = [arg for arg in command if arg.startswith("--backend-directory=")]
        backends = Path(backend_arg.split("=", 1)[1])
        assert backends != install.backends
        stub = backends / "python" / "triton_python_backend_stub"
        assert stub.is_file()
        assert stub.stat().st_size == install.python_stub.stat().st_size
    finally:
        server.stop()
    assert not backends.exists()  # stop() removes the scratch copy


# Environment


def test_environment_puts_the_interpreters_bin_dir_first_on_path(tmp_path: Path, fake_install: TritonInstall) -> None:
    env = TritonServer(options(tmp_path)).environment(fake_install)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_environment_adds_the_wheel_libraries_to_the_library_path(
    tmp_path: Path, fake_install: TritonInstall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/already/there")
    install = TritonInstall(fake_install.binary, fake_install.backends, None, library_path=tmp_path / "libs")
    entries = TritonServer(options(tmp_path)).environment(install)["LD_LIBRARY_PATH"].split(os.pathsep)
    assert entries[0] == str(tmp_path / "libs")
    assert entries[-1] == "/already/there"


def test_environment_leaves_the_library_path_alone_without_wheel_libraries(
    tmp_path: Path, fake_install: TritonInstall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/already/there")
    env = TritonServer(options(tmp_path)).environment(fake_install)
    assert env["LD_LIBRARY_PATH"] == "/already/there"


def test_every_server_uses_explicit_model_control_and_loads_everything_by_default(
    tmp_path: Path, fake_install: TritonInstall
) -> None:
    command = TritonServer(options(tmp_path)).command(fake_install, fake_install.backends)
    assert "--model-control-mode=explicit" in command
    assert "--load-model=*" in command


def test_a_family_loads_only_its_models(tmp_path: Path, fake_install: TritonInstall) -> None:
    command = TritonServer(options(tmp_path, models=("clip_rank",))).command(fake_install, fake_install.backends)
    assert [arg for arg in command if arg.startswith("--load-model")] == ["--load-model=clip_rank"]


def test_the_control_apis_are_restricted_to_the_servers_key_on_both_protocols(
    tmp_path: Path, fake_install: TritonInstall
) -> None:
    opts = options(tmp_path)
    command = TritonServer(opts).command(fake_install, fake_install.backends)
    rule = f"model-repository,shared-memory,trace,logging:x-vlm-control-key={opts.control_key}"
    assert f"--http-restricted-api={rule}" in command
    assert f"--grpc-restricted-protocol={rule}" in command


def test_each_server_gets_its_own_control_key_and_options_do_not_print_it(tmp_path: Path) -> None:
    first, second = options(tmp_path), options(tmp_path)
    assert first.control_key != second.control_key and len(first.control_key) >= 32
    assert first.control_key not in repr(first)


def test_the_http_endpoint_can_stay_on_loopback_while_grpc_and_metrics_listen_everywhere(
    tmp_path: Path, fake_install: TritonInstall
) -> None:
    server = TritonServer(options(tmp_path, host="0.0.0.0", http_host="127.0.0.1", http_port=1, grpc_port=2))
    command = server.command(fake_install, fake_install.backends)
    assert "--http-address=127.0.0.1" in command
    assert "--grpc-address=0.0.0.0" in command and "--metrics-address=0.0.0.0" in command
    assert server.http_url == "127.0.0.1:1" and server.grpc_url == "127.0.0.1:2"


def test_the_server_starts_at_its_niceness_above_the_launchers() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import os; print(os.nice(0))"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=functools.partial(launcher._before_exec, 5),
    )
    out, _ = child.communicate(timeout=30)
    assert int(out) == os.nice(0) + 5


@pytest.mark.skipif(not launcher.AUTOGROUP.exists(), reason="this kernel schedules without autogroups")
def test_the_servers_session_is_niced_where_the_kernel_schedules_sessions_as_groups() -> None:
    """A process's nice only orders it within its session's autogroup: the server's session needs the nice too."""
    script = "print(open('/proc/self/autogroup').read())"
    own_session = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=functools.partial(launcher._before_exec, 5),
    )
    assert own_session.communicate(timeout=30)[0].split()[-2:] == ["nice", "5"]
    before = launcher.AUTOGROUP.read_text()
    shared_session = subprocess.run(  # a child in the launcher's session leaves the launcher's weight alone
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=functools.partial(launcher._before_exec, 5),
        check=True,
    )
    assert shared_session.stdout.strip() == before.strip() == launcher.AUTOGROUP.read_text().strip()
