"""The scheduler: one run per tick whatever the number of schedulers, persistence, misfires,
the leader lock, ``runscheduler`` and the dev server's scheduler."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import EVENT_SCHEDULER_STARTED
from django.core.management import call_command, get_commands
from django.utils import timezone

from background_tasks.locks import RedisLock, redis_key
from background_tasks.management.commands import runscheduler, runserver
from background_tasks.management.commands.runscheduler import GracefulStop
from background_tasks.models import JobRun
from background_tasks.scheduler import DevScheduler, jobstore_create, leader_lock, scheduler_create
from tests.background_tasks.conftest import runs_counted, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_three_schedulers_on_one_job_store_run_each_tick_exactly_once(register_jobs, every_second):
    register_jobs(every_second)
    schedulers = []
    barrier = threading.Barrier(3)

    def start_one() -> None:
        scheduler = scheduler_create(specs=[every_second])
        schedulers.append(scheduler)
        barrier.wait()
        scheduler.start()

    threads = [threading.Thread(target=start_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        # Poll Redis, not the database: on the in-memory SQLite test database a reader here would
        # make the job's writes fail with "table is locked" (shared-cache locks ignore timeouts).
        wait_for(lambda: runs_counted() >= 4, timeout_s=15)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)

    runs = list(JobRun.objects.filter(job_id=every_second.name).order_by("scheduled_for"))
    ticks = [run.scheduled_for for run in runs if run.scheduled_for is not None]
    assert len(ticks) == len(set(ticks)), "a tick ran more than once"
    assert runs_counted() == len(runs)
    assert {run.status for run in runs} == {JobRun.Status.SUCCEEDED}
    assert all(later - earlier == timedelta(seconds=1) for earlier, later in itertools.pairwise(ticks))
    assert ticks[0] >= every_second.start


def _stored_next_run(name: str) -> datetime | None:
    job = jobstore_create().lookup_job(name)
    return job.next_run_time if job else None


@pytest.mark.django_db(transaction=True)
def test_jobs_persist_across_a_restart_and_a_missed_run_inside_the_grace_time_runs_once(settings, register_jobs, daily):
    settings.SCHEDULER_MISFIRE_GRACE_S = 600
    register_jobs(daily)
    first = scheduler_create(specs=[daily])
    first.start(paused=True)
    missed = timezone.now().replace(microsecond=0) - timedelta(minutes=2)
    first.modify_job(daily.name, next_run_time=missed)  # as if the process had been down at that time
    first.shutdown()

    stored = jobstore_create().lookup_job(daily.name)
    assert stored is not None and stored.next_run_time == missed
    assert str(stored.trigger) == str(daily.trigger()) and stored.misfire_grace_time == 600
    assert stored.coalesce is True and stored.max_instances == 1

    second = scheduler_create(specs=[daily])
    second.start()
    try:
        wait_for(lambda: runs_counted() >= 1 and _stored_next_run(daily.name) != missed)
    finally:
        second.shutdown(wait=True)
    runs = list(JobRun.objects.filter(job_id=daily.name))
    assert [(run.scheduled_for, run.status) for run in runs] == [(missed, JobRun.Status.SUCCEEDED)]
    assert runs_counted() == 1
    assert _stored_next_run(daily.name) == daily.trigger().get_next_fire_time(None, timezone.now())


@pytest.mark.django_db(transaction=True)
def test_a_run_missed_beyond_the_grace_time_is_recorded_as_skipped_not_run(settings, register_jobs, daily):
    settings.SCHEDULER_MISFIRE_GRACE_S = 60
    register_jobs(daily)
    first = scheduler_create(specs=[daily])
    first.start(paused=True)
    missed = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    first.modify_job(daily.name, next_run_time=missed)
    first.shutdown()

    second = scheduler_create(specs=[daily])
    second.start()
    try:
        wait_for(lambda: _stored_next_run(daily.name) != missed)
    finally:
        second.shutdown(wait=True)  # waits for the executor, where the missed run is recorded
    [run] = JobRun.objects.filter(job_id=daily.name)
    assert run.status == JobRun.Status.SKIPPED and run.scheduled_for == missed
    assert "misfire grace time of 60 s" in run.error
    assert runs_counted() == 0


def test_registering_replaces_changed_schedules_and_drops_jobs_no_longer_defined(settings, daily, every_second):
    first = scheduler_create(specs=[daily, every_second])
    first.start(paused=True)
    first.shutdown()
    settings.JOB_PRUNE_CHAT_HISTORY_CRON = "30 4 * * 1"  # Mondays 04:30
    second = scheduler_create(specs=[daily])
    second.start(paused=True)
    second.shutdown()
    stored = {job.id: job for job in jobstore_create().get_all_jobs()}
    assert set(stored) == {daily.name}
    assert stored[daily.name].next_run_time.weekday() == 0
    assert (stored[daily.name].next_run_time.hour, stored[daily.name].next_run_time.minute) == (4, 30)


def test_leader_lock_admits_one_holder_renews_itself_and_is_released(settings):
    first = RedisLock(redis_key("scheduler", "leader"), ttl_s=1)
    second = RedisLock(redis_key("scheduler", "leader"), ttl_s=1)
    assert first.acquire() is True
    assert second.acquire() is False
    lost = threading.Event()
    first.keep_alive(on_lost=lost.set)
    stop = threading.Event()
    threading.Timer(1.6, stop.set).start()
    assert second.wait(stop=stop, poll_s=0.1) is False  # still held after more than one TTL
    assert first.holder() == first.token and not lost.is_set()
    first.release()
    assert second.acquire() is True
    second.release()


def test_a_holder_whose_lock_was_taken_over_is_told_and_cannot_release_the_new_one():
    key = redis_key("scheduler", "leader")
    first = RedisLock(key, ttl_s=1)
    assert first.acquire()
    lost = threading.Event()
    first.keep_alive(on_lost=lost.set)
    second = RedisLock(key, ttl_s=30)
    from utils.redis import get_redis

    get_redis().set(key, second.token, ex=30)  # as if first had stalled past its TTL
    wait_for(lost.is_set, timeout_s=5)
    first.release()
    assert second.holder() == second.token
    second.release()


def test_two_dev_schedulers_never_schedule_together_and_the_second_takes_over(daily):
    one, two = DevScheduler(poll_s=0.1, specs=[daily]), DevScheduler(poll_s=0.1, specs=[daily])
    one.start()
    try:
        wait_for(lambda: one.scheduler is not None)
        two.start()
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        while not stop.wait(0.05):
            assert two.scheduler is None
        one.stop()
        assert one.scheduler is None
        wait_for(lambda: two.scheduler is not None)
        assert leader_lock().holder() is not None
    finally:
        one.stop()
        two.stop()
    assert leader_lock().holder() is None


def test_runserver_starts_the_scheduler_only_in_the_serving_process(monkeypatch, settings):
    seen: list[str | None] = []

    def fake_inner_run(self, *args, **options):
        if runserver.serves_in_this_process(options) and settings.DEV_SCHEDULER:
            wait_for(lambda: leader_lock().holder())
        seen.append(leader_lock().holder())

    monkeypatch.setattr(runserver.StaticfilesRunserverCommand, "inner_run", fake_inner_run)
    monkeypatch.delenv("RUN_MAIN", raising=False)
    runserver.Command().inner_run(use_reloader=False)  # --noreload: this process serves
    runserver.Command().inner_run(use_reloader=True)  # the autoreloader's parent: it does not serve
    monkeypatch.setenv("RUN_MAIN", "true")
    runserver.Command().inner_run(use_reloader=True)  # the autoreloader's child: it serves
    settings.DEV_SCHEDULER = False
    runserver.Command().inner_run(use_reloader=False)
    assert [holder is not None for holder in seen] == [True, False, True, False]
    assert leader_lock().holder() is None  # released when the server stopped


def test_manage_py_runserver_is_the_scheduling_one():
    # Needs "background_tasks" above "django.contrib.staticfiles" in INSTALLED_APPS: the first app
    # that defines a command wins, and staticfiles defines runserver too.
    assert get_commands()["runserver"] == "background_tasks"


def _read_lines(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_runscheduler_takes_the_lead_and_stops_cleanly_on_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runscheduler", "--poll", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    try:

        def running() -> bool:
            while not lines.empty():
                output.append(lines.get())
            assert process.poll() is None, "".join(output)
            return any("Scheduler started" in line for line in output)

        wait_for(running, timeout_s=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    assert "Acquired" in text and "SIGTERM received" in text and "Scheduler stopped" in text
    assert "prune_chat_history [0 2 * * *]" in text


def test_runscheduler_waits_for_the_leader_lock_then_runs_until_sigterm(monkeypatch, caplog):
    holder = leader_lock()
    assert holder.acquire()
    started = threading.Event()

    def create(**kwargs):
        scheduler = scheduler_create(**kwargs)
        scheduler.add_listener(lambda event: started.set(), EVENT_SCHEDULER_STARTED)
        return scheduler

    monkeypatch.setattr(runscheduler, "scheduler_create", create)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def choreography() -> None:
        wait_for(lambda: "Waiting for" in caplog.text)
        holder.release()
        if started.wait(15) or isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), GracefulStop):
            os.kill(os.getpid(), signal.SIGTERM)  # our handler is installed: it only asks the scheduler to stop

    threading.Thread(target=choreography, daemon=True).start()
    try:
        with caplog.at_level(logging.INFO):
            call_command("runscheduler", "--poll", "0.05")
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert started.is_set()
    assert f"held by {holder.token}" in caplog.text and "SIGTERM received" in caplog.text
    assert "Scheduler stopped" in caplog.text and leader_lock().holder() is None
