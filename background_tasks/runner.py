"""Running a job: the per-tick claim, a per-job mutex, the ``JobRun`` row, connections, alerts.

``run_scheduled`` is what APScheduler calls (``background_tasks.runner:run_scheduled``, the job's
name as its one argument); ``job_run_now`` is the same run by hand (API, ``manage.py run_job``).
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from redis.exceptions import RedisError

from background_tasks import jobs
from background_tasks.locks import RedisLock, redis_key, tick_claim
from background_tasks.models import JobRun
from background_tasks.services.alerts import job_failure_alert_send
from utils.exceptions import NotFound, ServiceError, ValidationFailed
from utils.logging import request_id_scope
from utils.metrics import record_job_run

logger = logging.getLogger(__name__)

JOB_MUTEX_TTL_S = 60  # renewed while the job runs; a crashed run frees its job within a minute
ERROR_CHARS = 20_000
INTERRUPTED = "Interrupted: the process running this job stopped before it finished."


class JobLockUnavailable(ServiceError):
    status_code = 503
    code = "lock_unavailable"
    default_detail = "Redis, which coordinates job runs, is unavailable; try again shortly."


def _claim_ttl_s() -> int:
    # Longer than any scheduler could still try this tick (misfire grace), with a margin.
    return int(settings.SCHEDULER_MISFIRE_GRACE_S) + 3600


def _close_old_connections() -> None:
    """``close_old_connections``, unless this thread's connection is inside a caller's transaction
    (a test, an atomic block around a command): closing it would break that caller."""
    if not connection.in_atomic_block:
        close_old_connections()


def _done_with_connections() -> None:
    """After a scheduled run: its pool thread may now sleep for a day, so it keeps no connection."""
    _close_old_connections()
    if not connection.in_atomic_block:
        connection.close()


def run_scheduled(job_name: str, *, scheduled_for: datetime | None = None) -> None:
    """Run one scheduled tick of a job, unless another scheduler already claimed that tick.

    ``scheduled_for`` is the tick's scheduled run time, which the scheduler's ``TickExecutor``
    passes in (APScheduler itself does not give it to job functions).
    """
    if scheduled_for is None:
        raise RuntimeError("run_scheduled needs scheduled_for: run it through background_tasks.scheduler.")
    _close_old_connections()
    try:
        if not tick_claim(job_id=job_name, scheduled_for=scheduled_for, ttl_s=_claim_ttl_s()):
            logger.info("Job %s at %s: already run by another scheduler", job_name, scheduled_for.isoformat())
            return
        job_execute(name=job_name, trigger=JobRun.Trigger.SCHEDULE, scheduled_for=scheduled_for)
    except Exception:  # boundary: logged here with the tick, then APScheduler records the error too
        logger.exception("Job %s (scheduled for %s) could not be run", job_name, scheduled_for.isoformat())
        raise
    finally:
        _done_with_connections()


def run_missed_record(*, job_name: str, scheduled_for: datetime, late_s: float) -> None:
    """Record a tick that came too late to run (beyond the misfire grace time) as skipped."""
    _close_old_connections()
    try:
        if not tick_claim(job_id=job_name, scheduled_for=scheduled_for, ttl_s=_claim_ttl_s()):
            return
        JobRun.objects.create(
            job_id=job_name,
            scheduled_for=scheduled_for,
            status=JobRun.Status.SKIPPED,
            finished_at=timezone.now(),
            error=f"Missed by {late_s:.0f} s, beyond the misfire grace time of {settings.SCHEDULER_MISFIRE_GRACE_S} s.",
        )
        record_job_run(job_name, JobRun.Status.SKIPPED)
    except Exception:  # boundary: a listener must not break the scheduler loop
        logger.exception("Could not record the missed run of %s at %s", job_name, scheduled_for.isoformat())
    finally:
        _done_with_connections()


def _spec_or_404(name: str, dry_run: bool) -> jobs.JobSpec:
    spec = jobs.job_get(name)
    if spec is None:
        raise NotFound(f"There is no job called {name!r}.", code="job_not_found")
    if dry_run and not spec.supports_dry_run:
        raise ValidationFailed(
            f"{name} has no dry run.", code="dry_run_unsupported", errors={"dry_run": ["Not supported by this job."]}
        )
    return spec


def _skipped(name: str, trigger: str, scheduled_for: datetime | None, dry_run: bool, why: str) -> JobRun:
    logger.warning("Job %s skipped: %s", name, why)
    record_job_run(name, JobRun.Status.SKIPPED)
    return JobRun.objects.create(
        job_id=name,
        trigger=trigger,
        scheduled_for=scheduled_for,
        dry_run=dry_run,
        status=JobRun.Status.SKIPPED,
        finished_at=timezone.now(),
        error=why,
    )


def _run(spec: jobs.JobSpec, run: JobRun) -> JobRun:
    try:
        result = spec.run(dry_run=True) if run.dry_run else spec.run()
    except Exception:  # boundary: every failure of a job is logged, recorded and alerted
        logger.exception("Job %s failed (run #%s)", spec.name, run.pk)
        _close_old_connections()  # a job that broke its connection must not stop us recording that
        run.status, run.error = JobRun.Status.FAILED, traceback.format_exc()[-ERROR_CHARS:]
    else:
        run.status, run.result = JobRun.Status.SUCCEEDED, result
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "result", "error", "finished_at"])
    logger.info("Job %s %s in %s ms: %s", spec.name, run.status, run.duration_ms, run.result)
    record_job_run(spec.name, run.status)
    if run.status == JobRun.Status.FAILED:
        job_failure_alert_send(job_run=run)
    return run


def job_execute(*, name: str, trigger: str, scheduled_for: datetime | None = None, dry_run: bool = False) -> JobRun:
    """Run a job now under its mutex and record it; a job's own failure is recorded, not raised."""
    spec = _spec_or_404(name, dry_run)
    mutex = RedisLock(redis_key("jobs", "running", name), ttl_s=JOB_MUTEX_TTL_S)
    try:
        acquired = mutex.acquire()
    except RedisError as exc:
        raise JobLockUnavailable() from exc
    if not acquired:
        return _skipped(name, trigger, scheduled_for, dry_run, "Another run of this job was still in progress.")
    mutex.keep_alive(on_lost=lambda: logger.error("Job %s lost its mutex while running", name))
    try:
        # Holding the mutex, no other run of this job is alive: a "running" row is a leftover.
        JobRun.objects.filter(job_id=name, status=JobRun.Status.RUNNING).update(
            status=JobRun.Status.FAILED, finished_at=timezone.now(), error=INTERRUPTED
        )
        run = JobRun.objects.create(job_id=name, trigger=trigger, scheduled_for=scheduled_for, dry_run=dry_run)
        with request_id_scope(f"job:{name}:{run.pk}"):  # the run's log lines (and provider calls) carry it
            return _run(spec, run)
    finally:
        mutex.release()


def job_run_now(*, name: str, dry_run: bool = False) -> JobRun:
    """Run a job by hand, synchronously (``POST /api/ops/jobs/{id}/run/``, ``manage.py run_job``)."""
    return job_execute(name=name, trigger=JobRun.Trigger.MANUAL, dry_run=dry_run)
