"""``vlm-gateway``: serve the gateway with uvicorn.

    vlm-gateway --triton-url 127.0.0.1:8001 --host 127.0.0.1 --port 9000

Auth is off unless ``$VLM_GATEWAY_API_KEYS`` (comma-separated) or ``--api-key-file`` gives keys.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gateway.settings import API_KEYS_VARIABLE, MIB, GatewaySettings, load_api_keys

DEFAULTS = GatewaySettings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--triton-url",
        default=DEFAULTS.triton_url,
        help="Triton's gRPC target: host:port, or for replicas dns:///name:port or ipv4:a:p,b:p (round_robin)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--metrics-port", type=int, help="also serve /metrics without auth on this port")
    parser.add_argument("--api-key-file", type=Path, help=f"API keys, one per line (also ${API_KEYS_VARIABLE})")
    models = parser.add_argument_group(
        "models", "the public ids are the served models' names (vlm-export model --name), read from Triton"
    )
    models.add_argument(
        "--chat-model",
        metavar="NAME",
        help="the VLM a request that names no model chats with (default: llava if served, else the only one)",
    )
    models.add_argument(
        "--embedding-model",
        metavar="NAME",
        help="the dual encoder a request that names no model uses (default: clip if served, else the only one)",
    )
    models.add_argument(
        "--models-cache",
        type=float,
        default=DEFAULTS.catalog_cache_s,
        metavar="S",
        help="seconds the served models read from Triton are kept before they are read again",
    )
    images = parser.add_argument_group("image URLs")
    images.add_argument(
        "--allow-image-host",
        action="append",
        default=[],
        metavar="HOST",
        help="fetch http(s) image URLs from this host (repeatable; *.example.com for its subdomains)",
    )
    images.add_argument(
        "--allow-private-image-addresses",
        action="store_true",
        help="allow fetches from private, loopback and link-local addresses (internal deployments only)",
    )
    images.add_argument("--image-fetch-timeout", type=float, default=DEFAULTS.image_fetch_timeout_s, metavar="S")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body-mib", type=float, default=DEFAULTS.max_body_bytes / MIB)
    limits.add_argument("--max-image-mib", type=float, default=DEFAULTS.max_image_bytes / MIB)
    limits.add_argument("--max-video-mib", type=float, default=DEFAULTS.max_video_bytes / MIB)
    limits.add_argument("--max-json-depth", type=int, default=DEFAULTS.max_json_depth)
    limits.add_argument("--max-images", type=int, default=DEFAULTS.max_images, help="per request")
    limits.add_argument("--max-embedding-inputs", type=int, default=DEFAULTS.max_embedding_inputs)
    limits.add_argument("--max-choices", type=int, default=DEFAULTS.max_choices, help="the largest n")
    limits.add_argument("--max-concurrency", type=int, default=DEFAULTS.max_concurrency, help="in flight, in all")
    limits.add_argument("--max-concurrency-per-key", type=int, default=DEFAULTS.max_concurrency_per_key)
    limits.add_argument("--retry-after", type=int, default=DEFAULTS.retry_after_s, metavar="S")
    limits.add_argument("--body-timeout", type=float, default=DEFAULTS.body_timeout_s, metavar="S")
    limits.add_argument("--triton-timeout", type=float, default=DEFAULTS.triton_timeout_s, metavar="S")
    limits.add_argument("--ready-cache", type=float, default=DEFAULTS.ready_cache_s, metavar="S")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(
        triton_url=args.triton_url,
        chat_model=args.chat_model,
        embedding_model=args.embedding_model,
        catalog_cache_s=args.models_cache,
        api_keys=load_api_keys(args.api_key_file),
        max_body_bytes=int(args.max_body_mib * MIB),
        max_json_depth=args.max_json_depth,
        max_images=args.max_images,
        max_image_bytes=int(args.max_image_mib * MIB),
        max_video_bytes=int(args.max_video_mib * MIB),
        max_embedding_inputs=args.max_embedding_inputs,
        max_choices=args.max_choices,
        max_concurrency=args.max_concurrency,
        max_concurrency_per_key=args.max_concurrency_per_key,
        retry_after_s=args.retry_after,
        body_timeout_s=args.body_timeout,
        triton_timeout_s=args.triton_timeout,
        allowed_image_hosts=frozenset(args.allow_image_host),
        allow_private_image_addresses=args.allow_private_image_addresses,
        image_fetch_timeout_s=args.image_fetch_timeout,
        ready_cache_s=args.ready_cache,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, OSError) as error:
        print(f"vlm-gateway: {error}", file=sys.stderr)
        return 2
    import uvicorn

    from gateway.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(settings)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.host, registry=app.state.metrics_registry)
    auth = f"API keys: {len(settings.api_keys)}" if settings.auth_required else "no authentication"
    print(f"vlm-gateway: http://{args.host}:{args.port} -> Triton gRPC {settings.triton_url} ({auth})", flush=True)
    # httptools: uvicorn's C HTTP parser (its pure-Python h11 cost a CPU-bound host throughput); asyncio's own loop,
    # which grpc.aio supports (uvloop it does not).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
        http="httptools",
        loop="asyncio",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
