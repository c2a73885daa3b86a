"""The retry policy of temporarily failed email: doubling waits, a ceiling, jitter, a bound."""

from __future__ import annotations

import pytest

from service.mail.retry import JITTER, MAX_DELAY, RetryPolicy


@pytest.mark.parametrize(("attempts", "base"), [(1, 30), (2, 60), (3, 120), (6, 960), (8, 3600)])
def test_each_wait_doubles_up_to_an_hour(attempts: int, base: float) -> None:
    policy = RetryPolicy(max_attempts=10, first_delay=30)
    waits = [policy.delay(attempts) for _ in range(200)]

    assert min(waits) >= base * (1 - JITTER)
    assert max(waits) <= base * (1 + JITTER)
    assert len(set(waits)) > 100, "messages that failed together come back apart"


def test_no_wait_exceeds_the_ceiling_by_more_than_the_jitter() -> None:
    policy = RetryPolicy(max_attempts=100, first_delay=3600)
    assert max(policy.delay(99) for _ in range(50)) <= MAX_DELAY * (1 + JITTER)


def test_the_message_is_given_up_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, first_delay=1)
    assert [policy.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
