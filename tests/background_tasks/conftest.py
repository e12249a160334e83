"""Fixtures for the maintenance-job tests: jobs that count their runs, polling, backup folders."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from background_tasks import jobs
from background_tasks.jobs import JobSpec
from utils.redis import get_redis

COUNTER_KEY = "test:background_tasks:runs"


def count_run(*, dry_run: bool = False) -> dict[str, int]:
    return {"run": int(get_redis().incr(COUNTER_KEY))}


def fail_run() -> dict[str, int]:
    raise RuntimeError("boom: the job broke")


def runs_counted() -> int:
    return int(get_redis().get(COUNTER_KEY) or 0)


@dataclass(frozen=True)
class IntervalJobSpec(JobSpec):
    """A job on a fast interval, anchored to a shared start so every scheduler sees the same ticks."""

    start: datetime | None = None
    seconds: int = 1

    @property
    def schedule(self) -> str:
        return f"every {self.seconds} s"

    def trigger(self) -> BaseTrigger:
        return IntervalTrigger(seconds=self.seconds, start_date=self.start, timezone=UTC)


def wait_for(predicate: Callable[[], Any], *, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll until ``predicate`` is truthy; fail the test after ``timeout_s`` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"condition not met within {timeout_s} s")


@pytest.fixture
def register_jobs(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Replace the job registry for one test (the runner looks jobs up by name at run time)."""

    def register(*specs: JobSpec, keep_defaults: bool = False) -> None:
        registry = dict(jobs.JOBS) if keep_defaults else {}
        registry.update({spec.name: spec for spec in specs})
        monkeypatch.setattr(jobs, "JOBS", registry)

    return register


@pytest.fixture
def every_second() -> IntervalJobSpec:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return IntervalJobSpec("test_every_second", "Counts its runs.", count_run, "", start=start)


@pytest.fixture
def daily() -> JobSpec:
    return JobSpec("test_daily", "Counts its runs, daily at 02:00.", count_run, "JOB_PRUNE_CHAT_HISTORY_CRON")


@pytest.fixture
def failing() -> JobSpec:
    return JobSpec("test_failing", "Always fails.", fail_run, "JOB_CLEANUP_TOKENS_CRON")


@pytest.fixture
def backup_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.BACKUP_DIR = tmp_path / "backups"
    yield settings.BACKUP_DIR
