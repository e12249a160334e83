"""The providers' one retry policy (rag.providers.http.RetryPolicy, on tenacity)."""

from __future__ import annotations

import time

import pytest

from rag.providers.http import CallStats, RetryPolicy


class Transient(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("transient")
        self.retry_after = retry_after


class Permanent(Exception):
    pass


def policy(**overrides: float) -> RetryPolicy:
    values = {"budget_s": 2.0, "timeout_s": 0.5, "max_attempts": 4, "initial_backoff_s": 0.01, "max_backoff_s": 0.02}
    return RetryPolicy(provider="test", **(values | overrides))  # type: ignore[arg-type]


def flaky(failures: list[Exception]):
    timeouts: list[float] = []

    def attempt(timeout: float) -> str:
        timeouts.append(timeout)
        if failures:
            raise failures.pop(0)
        return "ok"

    return attempt, timeouts


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


def hint(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, Transient) else None


def test_transient_failures_are_retried_until_success():
    attempt, timeouts = flaky([Transient(), Transient()])
    stats = CallStats()
    assert policy().call(attempt, retryable=retryable, stats=stats) == "ok"
    assert stats.attempts == 3 and len(timeouts) == 3
    assert all(0 < timeout <= 0.5 for timeout in timeouts)


def test_a_permanent_failure_is_not_retried_and_propagates_as_raised():
    attempt, _ = flaky([Permanent()])
    stats = CallStats()
    with pytest.raises(Permanent):
        policy().call(attempt, retryable=retryable, stats=stats)
    assert stats.attempts == 1


def test_attempts_are_bounded():
    attempt, _ = flaky([Transient() for _ in range(10)])
    stats = CallStats()
    with pytest.raises(Transient):
        policy(max_attempts=3).call(attempt, retryable=retryable, stats=stats)
    assert stats.attempts == 3 and stats.retry_after_beyond_budget is None


def test_retry_after_is_waited_for_when_it_fits_the_budget():
    attempt, _ = flaky([Transient(retry_after=0.2)])
    started = time.monotonic()
    assert policy().call(attempt, retryable=retryable, retry_after=hint) == "ok"
    assert time.monotonic() - started >= 0.2


def test_retry_after_beyond_the_budget_gives_up_at_once():
    attempt, _ = flaky([Transient(retry_after=30)])
    stats = CallStats()
    started = time.monotonic()
    with pytest.raises(Transient):
        policy().call(attempt, retryable=retryable, retry_after=hint, stats=stats)
    assert time.monotonic() - started < 1.0
    assert stats.attempts == 1 and stats.retry_after_beyond_budget == 30


def test_no_retry_starts_after_the_budget():
    calls: list[float] = []

    def slow(timeout: float) -> str:
        calls.append(timeout)
        time.sleep(0.15)
        raise Transient()

    stats = CallStats()
    with pytest.raises(Transient):
        policy(budget_s=0.2, max_attempts=10).call(slow, retryable=retryable, stats=stats)
    assert stats.attempts == 2  # the third would start after 0.3 s, past the 0.2 s budget
