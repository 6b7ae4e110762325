"""Retries: transient errors are retried a bounded number of times with jittered, growing waits; invalid
input never. Against a port where no server listens, every call and stream of both clients, over both
protocols, fails as unavailable after exactly the configured attempts."""

from __future__ import annotations

import asyncio
import time

import pytest

from client import AsyncVLMClient, RetryPolicy, ServerUnavailableError, VLMClient, VLMError
from client.errors import InvalidInputError, ServerBusyError
from client.retry import call_with_retry
from serving.launcher import free_port


def test_waits_grow_exponentially_with_jitter_and_stop_at_the_ceiling() -> None:
    policy = RetryPolicy(attempts=6, backoff_s=0.1, max_backoff_s=0.5)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)]:
        delays = {policy.delay_s(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


def test_busy_is_retried_until_the_attempts_run_out_and_invalid_input_is_tried_once() -> None:
    calls: list[str] = []

    def fail(kind: type[VLMError]) -> None:
        calls.append(kind.__name__)
        raise kind("no")

    policy = RetryPolicy(attempts=3, backoff_s=0.001)
    with pytest.raises(ServerBusyError):
        call_with_retry(policy, lambda: fail(ServerBusyError))
    with pytest.raises(InvalidInputError):
        call_with_retry(policy, lambda: fail(InvalidInputError))
    assert calls == ["ServerBusyError"] * 3 + ["InvalidInputError"]


def test_a_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_no_server_is_unavailable_after_exactly_the_configured_attempts(protocol: str) -> None:
    attempts: list[int] = []
    policy = RetryPolicy(attempts=4, backoff_s=0.05, on_failure=lambda attempt, error: attempts.append(attempt))
    url = f"127.0.0.1:{free_port()}"
    with VLMClient(url, protocol=protocol, timeout=5, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError):
            client.embed_texts(["hello"])
        waited = time.monotonic() - started
        with pytest.raises(ServerUnavailableError):
            client.generate([{"role": "user", "content": "hi"}], max_tokens=2)
    assert attempts == [1, 2, 3, 4] * 2
    assert waited >= 0.025 + 0.05 + 0.1  # the three jittered waits' lower bounds

    async def run() -> None:
        async with AsyncVLMClient(url, protocol=protocol, timeout=5, retry=policy) as client:
            with pytest.raises(ServerUnavailableError):
                await client.embed_texts(["hello"])
            with pytest.raises(ServerUnavailableError):
                await client.generate([{"role": "user", "content": "hi"}], max_tokens=2)

    asyncio.run(run())
    assert attempts == [1, 2, 3, 4] * 4
