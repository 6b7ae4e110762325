"""The gRPC channel every client opens: tritonclient's settings, plus round-robin over the target's addresses.

A target is ``host:port`` or any gRPC name-resolver URI: ``dns:///triton-headless:8001`` (every address the
name resolves to, re-resolved as pods come and go) or ``ipv4:10.0.0.1:8001,10.0.0.2:8001``. With
``round_robin`` each call goes to the next ready address and a replica that refuses connections is skipped
until it is back; the default ``pick_first`` would send everything to one. (Triton 2.51 answers gRPC's health
``Check`` but not ``Watch``, so a replica that is up but not ready stays in the rotation: its requests fail as
not ready, and a caller that retries once reaches the next replica.)
"""

from __future__ import annotations

from typing import Any

from tritonclient.grpc import KeepAliveOptions

_MAX_MESSAGE_BYTES = 2**31 - 1  # tritonclient's own limit


def grpc_channel_args() -> list[tuple[str, Any]]:
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.lb_policy_name", "round_robin"),
        # A replica that comes back gets traffic within seconds (gRPC's default back-off grows to 2 minutes).
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
