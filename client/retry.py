"""Bounded retries with jittered exponential backoff, only for transient errors (unavailable, busy)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from client.errors import TRANSIENT, VLMError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: no retry). Before attempt k+1 the client waits a random time in
    [backoff_s * 2**(k-1) / 2, backoff_s * 2**(k-1)], at most ``max_backoff_s``: clients that failed
    together do not come back together."""

    attempts: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    on_failure: Callable[[int, VLMError], None] | None = None  # (attempt number, error), for logs and tests
    retry_on: Callable[[VLMError], bool] = lambda error: isinstance(error, TRANSIENT)  # which errors are retried

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must not be negative")

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def should_retry(self, attempt: int, error: VLMError) -> bool:
        if self.on_failure is not None:
            self.on_failure(attempt, error)
        return self.retry_on(error) and attempt < self.attempts


NO_RETRY = RetryPolicy(attempts=1)


def call_with_retry(policy: RetryPolicy, call: Callable[[], T]) -> T:
    attempt = 1
    while True:
        try:
            return call()
        except VLMError as error:
            if not policy.should_retry(attempt, error):
                raise
        time.sleep(policy.delay_s(attempt))
        attempt += 1


async def call_with_retry_async(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    attempt = 1
    while True:
        try:
            return await call()
        except VLMError as error:
            if not policy.should_retry(attempt, error):
                raise
        await asyncio.sleep(policy.delay_s(attempt))
        attempt += 1
