"""Find and start a real tritonserver, wait until every model is ready, stop it cleanly.

Works with the NGC container's ``/opt/tritonserver`` and with the CPU build that the
``nvidia-pytriton`` wheel ships (python backend only), which needs its bundled libraries on
``LD_LIBRARY_PATH``, the python-backend stub for the running Python copied next to the backend, and the
running environment's ``bin`` first on ``PATH`` (the stub finds its Python through it).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from serving.admission import remove_pages
from serving.control import ControlClient, ControlError, generate_control_key, restriction_flags
from serving.parent_death import set_parent_death_signal
from serving.queue_watch import METRICS_URL_ENVIRONMENT
from serving.stubs import Stub, StubWatch, python_stubs

NGC_HOME = Path("/opt/tritonserver")
# Triton's HTTP frontend holds one of its threads for each open generate_stream. With its default of 8, eight open
# streams left every further HTTP request (a cancel among them) waiting until a stream ended: a cancelled stream
# ran to its end. The decoder admits max_num_seqs + max_waiting_requests (32) streams; this leaves room beyond them.
HTTP_THREAD_COUNT = 64
# tritonserver 2.51 sometimes aborts while its python stubs start under heavy CPU load (the python backend's
# shared-memory mutex times out: upstream issue 8882); a fresh start gets past it, so the launcher tries again.
STARTUP_RACE = "boost::interprocess::lock_exception"
STARTUP_RACE_RETRIES = 2
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through $http_proxy


class ServerError(RuntimeError):
    """The server could not start or a model did not load; the message says which and why."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backends: Path  # a folder holding python/ (and, in NGC, the other backends)
    caches: Path | None
    library_path: Path | None = None  # extra LD_LIBRARY_PATH entry (the wheel's bundled libraries)
    python_stub: Path | None = None  # the stub to copy into python/ (wheel only)


def find_tritonserver() -> TritonInstall:
    """``$TRITONSERVER``, then the NGC layout, then the nvidia-pytriton wheel."""
    override = os.environ.get("TRITONSERVER")
    if override:
        binary = Path(override)
        if not binary.is_file():
            raise ServerError(f"$TRITONSERVER points to {binary}, which is not a file")
        home = binary.parent.parent
        return TritonInstall(binary, home / "backends", _existing(home / "caches"))
    if (NGC_HOME / "bin" / "tritonserver").is_file():
        return TritonInstall(NGC_HOME / "bin" / "tritonserver", NGC_HOME / "backends", _existing(NGC_HOME / "caches"))
    try:
        import pytriton
    except ImportError:
        raise ServerError(
            "no tritonserver found: set $TRITONSERVER, run inside the NGC tritonserver container, "
            "or install the nvidia-pytriton wheel (pip install 'triton-vlm[serve]')"
        ) from None
    home = Path(pytriton.__file__).parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"the nvidia-pytriton wheel has no python-backend stub for Python {version}")
    return TritonInstall(
        binary=home / "bin" / "tritonserver",
        backends=home / "backends",
        caches=_existing(home / "caches"),
        library_path=Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs",
        python_stub=stub,
    )


def _shared_libpython_dir() -> list[str]:
    libdir = sysconfig.get_config_var("LIBDIR")
    return [libdir] if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir else []


def _existing(path: Path) -> Path | None:
    return path if path.is_dir() else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class ServerOptions:
    repository: Path
    target: str = "embedded"
    host: str = "0.0.0.0"
    http_host: str | None = None  # the HTTP endpoint's own address (default: ``host``), e.g. loopback only
    http_port: int = 8000  # 0 picks a free port
    grpc_port: int = 8001
    metrics_port: int = 8002
    log_file: Path = Path("tritonserver.log")
    cache_size_bytes: int = 256 * 1024 * 1024
    exit_timeout_s: int = 5
    startup_timeout_s: float = 300.0
    models: tuple[str, ...] = ()  # load only these (Triton loads an ensemble's steps with it); () = all
    extra_args: list[str] = field(default_factory=list)
    control_key: str = field(default_factory=generate_control_key, repr=False)  # see serving.control
    # Added to the nice value of the server and every process it starts: a load generator on the same host then
    # gets the CPU to send its arrivals on time, as a client on another host would.
    niceness: int = 0


def loopback_options(
    repository: Path, log_file: Path, *, exit_timeout_s: int = 5, models: tuple[str, ...] = ()
) -> ServerOptions:
    """Loopback only, every port picked free: what tests, the demo and benchmarks start."""
    return ServerOptions(
        repository=repository,
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        log_file=log_file,
        exit_timeout_s=exit_timeout_s,
        models=models,
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _client_host(bound: str) -> str:
    """Where a local client reaches an endpoint bound to ``bound``."""
    return "127.0.0.1" if bound in ("0.0.0.0", "") else bound


AUTOGROUP = Path("/proc/self/autogroup")


def _before_exec(niceness: int) -> None:
    """Runs in the child before exec (after its ``setsid``): the server gets SIGTERM if the launcher dies (Linux)."""
    set_parent_death_signal(signal.SIGTERM)
    if niceness:
        os.nice(niceness)
        # Where the kernel schedules by autogroup (Linux's default on desktop and VM kernels), a session's processes
        # share one CPU weight, that of its autogroup's nice, and a process's own nice only orders it within its
        # session: the server's new session must be niced too, or a client in another session gains nothing.
        # (A burst's load generator, sharing 2 cores, was then held up to 100 ms at a time: refusals p99 35-84 ms
        # vs 14-15 ms with the session niced.) Only a session of the server's own is niced, never the launcher's.
        # Raising a nice needs no privilege; without autogroups there is no file.
        if os.getsid(0) == os.getpid():
            with contextlib.suppress(OSError):
                AUTOGROUP.write_text(str(niceness))


def _reap(stubs: Iterable[Stub], grace_s: float = 5.0) -> None:
    """Most stubs leave once their server is gone, but not all: after a crash of tritonserver 2.51, stubs of
    models with threads of their own (the preprocessors, the decoder) were seen running on, orphaned, holding
    their memory. One still there after ``grace_s`` is killed."""
    deadline = time.monotonic() + grace_s
    for stub in stubs:
        while stub.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if stub.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(stub.pid, signal.SIGKILL)


class TritonServer:
    """``with TritonServer(options) as server:`` starts tritonserver and waits until every model is ready."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.stubs = StubWatch()  # its python stubs (watch_stubs): reaped if the server dies

    @property
    def http_url(self) -> str:
        return f"{_client_host(self._http_host)}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{_client_host(self.options.host)}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_client_host(self.options.host)}:{self.options.metrics_port}/metrics"

    @property
    def _http_host(self) -> str:
        return self.options.http_host or self.options.host

    def _resolve_ports(self) -> None:
        opts = self.options
        for label in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(opts, label)
            host = self._http_host if label == "http_port" else opts.host
            if port == 0:
                setattr(opts, label, free_port(host))
            elif not port_is_free(host, port):
                flag = "--" + label.replace("_", "-")
                raise ServerError(f"port {port} ({flag}) is already in use; free it or pass {flag} 0 for any free port")

    def prepare_backends(self, install: TritonInstall) -> Path:
        """The backend folder to pass; for the wheel, a scratch copy with the stub in place (removed by stop())."""
        if install.python_stub is None:
            return install.backends
        self._scratch = tempfile.TemporaryDirectory(prefix="triton-vlm-backends-")
        python_backend = Path(self._scratch.name) / "python"
        shutil.copytree(install.backends / "python", python_backend)
        shutil.copy2(install.python_stub, python_backend / "triton_python_backend_stub")
        return Path(self._scratch.name)

    def command(self, install: TritonInstall, backends: Path) -> list[str]:
        opts = self.options
        args = [
            str(install.binary),
            f"--model-repository={opts.repository.resolve()}",
            f"--backend-directory={backends}",
            f"--model-config-name={opts.target}",
            f"--http-address={self._http_host}",
            f"--grpc-address={opts.host}",
            f"--metrics-address={opts.host}",
            f"--http-port={opts.http_port}",
            f"--grpc-port={opts.grpc_port}",
            f"--metrics-port={opts.metrics_port}",
            f"--exit-timeout-secs={opts.exit_timeout_s}",
            "--exit-on-error=false",  # a model that fails to load is reported by name, below
            "--log-verbose=0",
            f"--http-thread-count={HTTP_THREAD_COUNT}",
            # Explicit control in every mode, so the supervisor can reload a model whose stub died; the
            # control APIs are behind the operator's key, so nobody else can load anything.
            "--model-control-mode=explicit",
            *(f"--load-model={model}" for model in opts.models or ("*",)),
            *restriction_flags(opts.control_key),
        ]
        if opts.cache_size_bytes > 0:
            args.append(f"--cache-config=local,size={opts.cache_size_bytes}")
            if install.caches is not None:
                args.append(f"--cache-directory={install.caches}")
        return args + list(opts.extra_args)

    def environment(self, install: TritonInstall) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env[METRICS_URL_ENVIRONMENT] = self.metrics_url  # the admission steps read the queues there
        if install.library_path is not None:
            # The stub links libpython3.X.so: it must be this interpreter's, not another 3.X on the host,
            # or stdlib extension modules (ssl, ...) fail on symbols that differ between patch releases.
            libraries = [str(install.library_path), *_shared_libpython_dir(), env.get("LD_LIBRARY_PATH", "")]
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, libraries))
        return env

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.http_url, self.options.control_key)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL tritonserver (its stubs are reaped by the next stop()); for a server that no longer recovers."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def watch_stubs(self, reloaded: str | None = None) -> set[str]:
        """Look at the stub processes running now; the models with a stub that died since the last look.
        They are remembered, so that stop() can kill the ones a crashed server left behind (they are no
        longer its children by then). A ``reloaded`` model's old instances are forgotten first (they left on
        purpose) and each must run again."""
        if not self.running:
            return set()
        assert self.process is not None
        server_pid = self.process.pid
        if reloaded is not None:
            return self.stubs.look_after_reload(reloaded, lambda: python_stubs(server_pid))
        return self.stubs.look(python_stubs(server_pid))

    def start(self, cancel: threading.Event | None = None, append_log: bool = False) -> TritonServer:
        """Start and wait until every model is ready; setting ``cancel`` (from a signal handler) aborts.
        A restart passes ``append_log`` so the log of the run that ended stays readable."""
        for retry in range(STARTUP_RACE_RETRIES):
            try:
                return self._start_once(cancel, append_log or retry > 0)
            except ServerError as error:
                if STARTUP_RACE not in str(error):
                    raise
        return self._start_once(cancel, append_log=True)

    def _start_once(self, cancel: threading.Event | None, append_log: bool) -> TritonServer:
        opts = self.options
        if not opts.repository.is_dir():
            raise ServerError(f"model repository {opts.repository} is not a folder")
        install = find_tritonserver()
        self._resolve_ports()
        opts.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(opts.log_file, "ab" if append_log else "wb") as log:
                self.process = subprocess.Popen(
                    self.command(install, self.prepare_backends(install)),
                    env=self.environment(install),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches the launcher, which stops the server in order
                    preexec_fn=functools.partial(_before_exec, opts.niceness),
                )
            self._wait_until_ready(cancel or threading.Event())
        except OSError as error:
            self.stop()
            raise ServerError(f"could not start {install.binary}: {error.strerror or error}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, path: str) -> int:
        try:
            with _DIRECT.open(f"http://{self.http_url}{path}", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def _wait_until_ready(self, cancel: threading.Event) -> None:
        deadline = time.monotonic() + self.options.startup_timeout_s
        while time.monotonic() < deadline:
            if cancel.is_set():
                raise ServerError("start-up interrupted")
            if self.process is None or self.process.poll() is not None:
                raise ServerError(f"tritonserver exited during start-up; last log lines:\n{self.log_tail()}")
            try:
                status = self._get("/v2/health/live")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                status = 0
            if status == 200:
                self._check_models()
                self.watch_stubs()
                return
            cancel.wait(0.2)
        raise ServerError(
            f"tritonserver was not live after {self.options.startup_timeout_s:.0f}s; see {self.options.log_file}"
        )

    def model_states(self) -> list[dict]:
        try:
            return self.control.index()
        except ControlError as error:
            raise ServerError(f"the repository index failed: {error}") from None

    def _check_models(self) -> None:
        """Live means the initial load is over; every model asked for (all by default) must now be READY."""
        states = self.model_states()
        if self.options.models:
            known = {m["name"] for m in states}
            missing = [name for name in self.options.models if name not in known]
            if missing:
                raise ServerError(f"the repository {self.options.repository} has no model named {', '.join(missing)}")
            states = [m for m in states if m["name"] in self.options.models]
        failed = [m for m in states if m.get("state") != "READY"]
        if failed:
            lines = [f"  {m['name']}: {_first_line(m.get('reason') or m.get('state') or 'not loaded')}" for m in failed]
            raise ServerError("models failed to load:\n" + "\n".join(lines) + f"\nfull log: {self.options.log_file}")
        if not states:
            raise ServerError(f"the repository {self.options.repository} holds no models")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.options.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """SIGTERM (Triton drains admitted requests for up to ``exit_timeout_s``), then SIGKILL past a margin;
        stubs still running once the server is gone are killed too, so nothing outlives a stop."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            stubs = {**self.stubs.known, **python_stubs(process.pid)}
            self.stubs = StubWatch()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=self.options.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            _reap(stubs.values())
            remove_pages(process.pid)  # the decoders' admission pages (serving/admission.py)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
