"""The APScheduler 3 setup: jobs in Redis, run in UTC, one scheduling process at a time.

Nothing here starts on import. ``manage.py runscheduler`` (production) and the dev server's
``runserver`` (``DEV_SCHEDULER``) build a scheduler with ``scheduler_create`` and start it only
while they hold the leader lock, so two processes never schedule at once. Each tick is also
claimed in Redis by ``background_tasks.runner`` so that even overlapping schedulers (a leader
that stalled past its lock's TTL, say) run it once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from background_tasks import jobs
from background_tasks.locks import RedisLock, redis_key
from utils.redis import connection_pool, get_redis

logger = logging.getLogger(__name__)

RUNNER = "background_tasks.runner:run_scheduled"  # by reference: jobs are pickled into Redis
WORKERS = 4


def _jobs_key() -> str:
    return redis_key("scheduler", "jobs")


def _run_times_key() -> str:
    return redis_key("scheduler", "run_times")


class SharedPoolRedisJobStore(RedisJobStore):
    """APScheduler's Redis job store on our shared connection pool (real Redis or fakeredis).

    Its ``shutdown`` would disconnect that pool under the cache, the locks and any other
    scheduler in the process, so it does nothing here.
    """

    def shutdown(self) -> None:
        return None


def jobstore_create() -> RedisJobStore:
    return SharedPoolRedisJobStore(
        jobs_key=_jobs_key(), run_times_key=_run_times_key(), connection_pool=connection_pool()
    )


class _Tick:
    """A job as APScheduler's ``run_job`` sees it, with the tick's run time added to its kwargs."""

    def __init__(self, job: Job, run_time: datetime) -> None:
        self._job = job
        self.kwargs = {**job.kwargs, "scheduled_for": run_time}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


def _run_ticks(job: Job, jobstore_alias: str, run_times: list[datetime], logger_name: str) -> list[Any]:
    events: list[Any] = []
    for run_time in run_times:
        events += run_job(_Tick(job, run_time), jobstore_alias, [run_time], logger_name)
    return events


class TickExecutor(ThreadPoolExecutor):
    """A thread pool executor that tells the job which scheduled run time it is running.

    APScheduler knows each run's scheduled time (``run_times``) but calls the job function
    without it; listeners for ``EVENT_JOB_SUBMITTED`` fire only after the job may already have
    started, and "now floored to the trigger" is wrong whenever a run starts late. So the
    executor hands ``scheduled_for=run_time`` to the function itself, exactly, and reuses
    APScheduler's own ``run_job`` (misfire check, events, logging) for everything else.
    """

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def done(future: Any) -> None:
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(_run_ticks, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(done)


class _StopsCleanly:
    """APScheduler 3.11's loop runs one more round after ``shutdown()`` wakes it: a job due at
    that moment is handed to the stopped executor (and fails) while its next run time moves on,
    so the tick is lost. A stopped scheduler here processes nothing."""

    state: int

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        wait_seconds: float | None = super()._process_jobs()  # type: ignore[misc]
        return wait_seconds


class Scheduler(_StopsCleanly, BackgroundScheduler):
    pass


class ForegroundScheduler(_StopsCleanly, BlockingScheduler):
    """The blocking scheduler of ``runscheduler``, whose main thread never sleeps for long.

    A process-directed SIGTERM may be delivered to any of the process's threads; Python then runs
    the handler in the main thread the next time that thread executes bytecode. APScheduler's loop
    would sleep in one lock wait until the next job (hours), so the handler waits with it. Sleeping
    in slices of ``SIGNAL_CHECK_S`` keeps shutdown prompt without extra Redis round trips.
    """

    SIGNAL_CHECK_S = 1.0

    def _main_loop(self) -> None:
        wait_seconds: float | None = None
        while self.state != STATE_STOPPED:
            deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
            while self.state != STATE_STOPPED:
                remaining = self.SIGNAL_CHECK_S if deadline is None else deadline - time.monotonic()
                if remaining <= 0 or self._event.wait(min(remaining, self.SIGNAL_CHECK_S)):
                    break
            self._event.clear()
            wait_seconds = self._process_jobs()


def job_options() -> dict[str, Any]:
    return {
        "max_instances": 1,  # a slow run is never overlapped by the next tick in this process
        "coalesce": True,  # after downtime, a backlog of ticks runs once, not once per tick
        # A run may start up to this late (default an hour): a restart, deploy or short outage
        # around 02:00 still prunes tonight. Later than that it is skipped and recorded, rather
        # than, say, mailing yesterday's report in the afternoon. APScheduler's default is 1 s.
        "misfire_grace_time": int(settings.SCHEDULER_MISFIRE_GRACE_S),
    }


def jobs_register(*, scheduler: BaseScheduler, store: RedisJobStore, specs: Sequence[jobs.JobSpec]) -> None:
    """Put ``specs`` in the job store (replacing what is there) and drop jobs no longer defined.

    A stored job whose schedule is unchanged keeps its next run time: if that passed while no
    scheduler ran, it runs once on start (within the misfire grace time) instead of being lost.
    """
    stored = {job.id: job for job in store.get_all_jobs()}
    for spec in specs:
        trigger = spec.trigger()
        previous = stored.get(spec.name)
        keep: dict[str, Any] = {}
        if previous is not None and previous.next_run_time and str(previous.trigger) == str(trigger):
            keep["next_run_time"] = previous.next_run_time
        scheduler.add_job(
            RUNNER,
            trigger=trigger,
            args=[spec.name],
            id=spec.name,
            name=spec.description,
            replace_existing=True,
            **job_options(),
            **keep,
        )
    for job_id in stored.keys() - {spec.name for spec in specs}:
        store.remove_job(job_id)
        logger.info("Removed job %s from the job store: it is no longer defined", job_id)


def _on_missed(event: JobExecutionEvent) -> None:
    from background_tasks.runner import run_missed_record

    late_s = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
    run_missed_record(job_name=event.job_id, scheduled_for=event.scheduled_run_time, late_s=late_s)


def scheduler_create(*, blocking: bool = False, specs: Sequence[jobs.JobSpec] | None = None) -> BaseScheduler:
    """A configured, not yet started scheduler with every job registered (pending until start)."""
    store = jobstore_create()
    scheduler_class = ForegroundScheduler if blocking else Scheduler
    scheduler: BaseScheduler = scheduler_class(
        jobstores={"default": store},
        executors={"default": TickExecutor(max_workers=WORKERS)},
        job_defaults=job_options(),
        timezone=UTC,
    )
    jobs_register(
        scheduler=scheduler, store=store, specs=list(specs) if specs is not None else list(jobs.JOBS.values())
    )
    scheduler.add_listener(_on_missed, EVENT_JOB_MISSED)
    return scheduler


def leader_lock() -> RedisLock:
    """The lock a process must hold to run a scheduler (``SET NX EX``, renewed while alive)."""
    return RedisLock(redis_key("scheduler", "leader"), ttl_s=int(settings.SCHEDULER_LEADER_TTL_S))


def next_run_time(spec: jobs.JobSpec, *, now: datetime | None = None) -> datetime | None:
    """From the job store when a scheduler has registered the job, else from its trigger."""
    try:
        score = get_redis().zscore(_run_times_key(), spec.name)
    except RedisError as exc:
        logger.warning("Job store unavailable (%s); computing next run of %s from its schedule", exc, spec.name)
        score = None
    if score is not None:
        return datetime.fromtimestamp(float(score), UTC)
    fire_time: datetime | None = spec.trigger().get_next_fire_time(None, now or timezone.now())
    return fire_time


class DevScheduler:
    """The dev server's scheduler: a daemon thread waits for the leader lock, then runs a
    ``BackgroundScheduler`` for as long as it holds it (and waits again if it loses it)."""

    def __init__(self, *, poll_s: float = 5.0, specs: Sequence[jobs.JobSpec] | None = None) -> None:
        self._poll_s = poll_s
        self._specs = specs
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.scheduler: BaseScheduler | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dev-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            lock = leader_lock()
            if not lock.wait(stop=self._stop, poll_s=self._poll_s):
                return
            try:
                self._lead(lock)
            except Exception:  # boundary: the dev server keeps serving; the scheduler retries
                logger.exception("Dev scheduler failed; retrying in %s s", self._poll_s)
                self._stop.wait(self._poll_s)
            finally:
                lock.release()

    def _lead(self, lock: RedisLock) -> None:
        self._wake.clear()
        scheduler = scheduler_create(blocking=False, specs=self._specs)
        scheduler.start()
        self.scheduler = scheduler
        logger.info("Dev server scheduler started (DEV_SCHEDULER=false turns it off)")
        lock.keep_alive(on_lost=self._wake.set)
        try:
            if not self._stop.is_set():  # a stop() before the clear() above must not be missed
                self._wake.wait()
        finally:
            self.scheduler = None
            scheduler.shutdown(wait=False)
            logger.info("Dev server scheduler stopped")
