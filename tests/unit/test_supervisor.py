"""The supervisor's restart back-off (the supervision itself is tested against real servers in tests/server/)."""

from __future__ import annotations

from serving.supervisor import Backoff


def test_restarts_back_off_doubling_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1, max_s=8, reset_after_s=60)
    assert [backoff.next_delay(ran_for_s=0.5) for _ in range(6)] == [1, 2, 4, 8, 8, 8]


def test_a_run_that_lasted_starts_the_back_off_over() -> None:
    backoff = Backoff(initial_s=1, max_s=8, reset_after_s=60)
    for _ in range(4):
        backoff.next_delay(ran_for_s=1)
    assert backoff.next_delay(ran_for_s=120) == 1
