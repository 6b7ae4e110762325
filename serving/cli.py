"""``vlm-serve``: start tritonserver on a model repository and keep it serving until SIGINT/SIGTERM.

It restarts a tritonserver that dies and reloads a model whose python stub dies (``serving.supervisor``), and
keeps Triton's control APIs behind the operator's key (``serving.control``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from serving.control import read_or_create_control_key
from serving.launcher import ServerError, ServerOptions, TritonServer
from serving.served import RepositoryError, select, select_models, served_precisions
from serving.supervisor import Supervisor

TARGETS = ("embedded", "cpu", "gpu", "gpu-onnxruntime")  # as export.triton_config.TARGETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-serve", description=__doc__)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="Triton model repository")
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="embedded",
        help="deployment target: picks <model>/configs/<target>.pbtxt (Triton's --model-config-name)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address the endpoints bind to")
    parser.add_argument(
        "--http-host",
        help="address of the HTTP endpoint alone (default: --host); 127.0.0.1 keeps Triton's HTTP inside the host",
    )
    parser.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    parser.add_argument("--log-file", type=Path, default=Path("tritonserver.log"), help="server log")
    parser.add_argument("--cache-size", type=int, default=256 * 1024 * 1024, help="response cache bytes; 0 disables")
    parser.add_argument("--exit-timeout", type=int, default=5, help="seconds to drain requests on shutdown")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for readiness")
    parser.add_argument(
        "--family",
        action="append",
        help="serve only this model family (clip, llava, ...: one the repository's configs name; repeatable); "
        "default: every model in the repository",
    )
    parser.add_argument(
        "--model",
        action="append",
        help="serve only the checkpoint of this name (clip, llava, or what `vlm-export model --name` named it; "
        "repeatable, adds to --family); default: every model in the repository",
    )
    parser.add_argument(
        "--control-key-file",
        type=Path,
        help="the operator's key for Triton's control APIs (a new key is written there if the file is missing); "
        "default: a key made for this run only",
    )
    parser.add_argument(
        "--no-supervise", action="store_true", help="exit when tritonserver dies instead of restarting it"
    )
    parser.add_argument("triton_args", nargs="*", help="after --: more tritonserver arguments")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def options_from(args: argparse.Namespace) -> ServerOptions:
    options = ServerOptions(
        repository=args.repository,
        target=args.target,
        host=args.host,
        http_host=args.http_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_file=args.log_file,
        cache_size_bytes=args.cache_size,
        exit_timeout_s=args.exit_timeout,
        startup_timeout_s=args.startup_timeout,
        models=served_entry_models(args.repository, args.family or (), args.model or ()),
        extra_args=list(args.triton_args),
    )
    if args.control_key_file:
        options.control_key = read_or_create_control_key(args.control_key_file)
    return options


def served_entry_models(
    repository: Path, families: list[str] | tuple[str, ...], names: list[str] | tuple[str, ...]
) -> tuple[str, ...]:
    """What the clients of these families and named checkpoints call, as the repository's configs say
    (serving/served.py); Triton loads each ensemble's steps with it. () for neither: every model."""
    models = [model for family in select(repository, families) for model in family.models]
    models += [model for served in select_models(repository, names) for model in served.entry_models]
    return tuple(dict.fromkeys(models))


def say(message: str) -> None:
    print(f"vlm-serve: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        options = options_from(args)
    except RepositoryError as error:
        say(f"{'--model' if 'no model' in str(error) else '--family'}: {error}")
        return 1
    except (OSError, ValueError) as error:
        say(f"--control-key-file: {getattr(error, 'strerror', None) or error}")
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = TritonServer(options)
    try:
        server.start(cancel=stop)
    except ServerError as error:
        say(str(error))
        return 1
    key_source = args.control_key_file or "made for this run (pass --control-key-file to keep one)"
    print(f"tritonserver ready ({args.target} target, repository {args.repository})")
    print(f"  HTTP     http://{server.http_url}")
    print(f"  gRPC     {server.grpc_url}")
    print(f"  metrics  {server.metrics_url}")
    print(f"  log      {options.log_file}")
    precisions = served_precisions(args.repository, args.target)
    if precisions:
        print(f"  encoders {', '.join(f'{model} {precision}' for model, precision in precisions.items())}")
    print(f"  control  model repository, shared memory, trace and logging APIs need the key: {key_source}", flush=True)
    if args.no_supervise:
        while not stop.wait(0.5):
            server.watch_stubs()  # so that stop() can kill the stubs a crash leaves behind
            if not server.running:
                say(f"tritonserver exited unexpectedly; last log lines:\n{server.log_tail()}")
                server.stop()
                return 1
    else:
        Supervisor(server, stop, say).run()
    code = server.stop()
    print(f"tritonserver stopped (exit code {code})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
