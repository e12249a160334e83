"""Job runs: counted by job and status, and logged under their own id."""

from __future__ import annotations

import logging

import pytest

from background_tasks import jobs
from background_tasks.jobs import JobSpec
from background_tasks.locks import RedisLock, redis_key
from background_tasks.runner import job_run_now

pytestmark = pytest.mark.django_db
RUNS = "ragchat_job_runs_total"


def _works(*, dry_run: bool = False) -> dict[str, int]:
    logging.getLogger("tests.observability.job").info("working")
    return {"done": 1}


def _breaks(*, dry_run: bool = False) -> dict[str, int]:
    raise RuntimeError("the job broke")


@pytest.fixture
def test_jobs(monkeypatch) -> None:
    monkeypatch.setattr(
        jobs,
        "JOBS",
        {
            "obs_works": JobSpec("obs_works", "Works.", _works, "JOB_CLEANUP_TOKENS_CRON"),
            "obs_breaks": JobSpec("obs_breaks", "Breaks.", _breaks, "JOB_CLEANUP_TOKENS_CRON"),
        },
    )


def test_runs_are_counted_by_job_and_status(delta, test_jobs):
    succeeded = delta(RUNS, job="obs_works", status="succeeded")
    failed = delta(RUNS, job="obs_breaks", status="failed")
    skipped = delta(RUNS, job="obs_works", status="skipped")
    job_run_now(name="obs_works")
    job_run_now(name="obs_works")
    job_run_now(name="obs_breaks")
    mutex = RedisLock(redis_key("jobs", "running", "obs_works"), ttl_s=60)
    assert mutex.acquire()
    try:
        job_run_now(name="obs_works")  # another run holds the job: skipped
    finally:
        mutex.release()
    assert (succeeded(), failed(), skipped()) == (2, 1, 1)


def test_a_run_logs_under_its_own_id(test_jobs, json_logs):
    run = job_run_now(name="obs_works")
    lines = json_logs.by_logger("tests.observability.job")
    assert lines and lines[0]["request_id"] == f"job:obs_works:{run.pk}"
