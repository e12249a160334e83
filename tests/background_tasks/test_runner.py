"""Running a job: recorded, failures logged and alerted once an hour, ticks claimed once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from background_tasks import runner
from background_tasks.locks import RedisLock, redis_key
from background_tasks.models import JobRun
from background_tasks.runner import INTERRUPTED, job_run_now, run_scheduled
from tests.background_tasks.conftest import runs_counted
from tests.factories import JobRunFactory
from utils.exceptions import NotFound, ValidationFailed

pytestmark = pytest.mark.django_db


def test_a_job_that_raises_is_logged_recorded_as_failed_and_alerts_the_admins_once_an_hour(
    settings, register_jobs, failing, caplog
):
    settings.ADMINS = [("Ops", "ops@example.com")]
    register_jobs(failing)
    with caplog.at_level(logging.ERROR, logger="background_tasks.runner"):
        first = job_run_now(name=failing.name)
        second = job_run_now(name=failing.name)
    for run in (first, second):
        run.refresh_from_db()
        assert run.status == JobRun.Status.FAILED and run.finished_at is not None
        assert "RuntimeError: boom: the job broke" in run.error and "Traceback" in run.error
    assert [r.exc_info is not None for r in caplog.records if "failed" in r.getMessage()] == [True, True]
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert alert.to == ["ops@example.com"] and failing.name in alert.subject
    assert "boom: the job broke" in alert.body and "run by hand" in alert.body


def test_alerts_go_to_active_staff_without_admins_and_again_after_the_hour(
    settings, register_jobs, failing, staff_user
):
    settings.ADMINS = []
    register_jobs(failing)
    job_run_now(name=failing.name)
    from utils.redis import get_redis

    get_redis().delete(redis_key("jobs", "alerted", failing.name))  # the hour has passed
    job_run_now(name=failing.name)
    assert [m.to for m in mail.outbox] == [[staff_user.email], [staff_user.email]]


def test_a_scheduled_tick_runs_once_even_if_two_schedulers_submit_it(register_jobs, daily):
    register_jobs(daily)
    tick = timezone.now().replace(microsecond=0)
    run_scheduled(daily.name, scheduled_for=tick)
    run_scheduled(daily.name, scheduled_for=tick)
    run_scheduled(daily.name, scheduled_for=tick + timedelta(days=1))
    runs = JobRun.objects.filter(job_id=daily.name)
    assert sorted(r.scheduled_for for r in runs if r.scheduled_for) == [tick, tick + timedelta(days=1)]
    assert {r.trigger for r in runs} == {JobRun.Trigger.SCHEDULE}
    assert runs_counted() == 2


def test_a_failing_scheduled_run_alerts_with_its_scheduled_time(settings, register_jobs, failing):
    settings.ADMINS = [("Ops", "ops@example.com")]
    register_jobs(failing)
    tick = timezone.now().replace(microsecond=0)
    run_scheduled(failing.name, scheduled_for=tick)
    run = JobRun.objects.get(job_id=failing.name)
    assert run.status == JobRun.Status.FAILED and run.scheduled_for == tick
    assert f"scheduled for {tick:%Y-%m-%d %H:%M:%S} UTC" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_wrapper_closes_database_connections_before_and_after(monkeypatch, register_jobs, daily):
    register_jobs(daily)
    calls = []
    monkeypatch.setattr(runner, "close_old_connections", lambda: calls.append("close"))
    original = runner.job_execute

    def execute(**kwargs):
        calls.append("run")
        return original(**kwargs)

    monkeypatch.setattr(runner, "job_execute", execute)
    run_scheduled(daily.name, scheduled_for=timezone.now())
    assert calls[0] == "close" and calls[-1] == "close" and "run" in calls


def test_a_run_while_another_run_of_the_job_is_in_progress_is_skipped(register_jobs, daily):
    register_jobs(daily)
    other = RedisLock(redis_key("jobs", "running", daily.name), ttl_s=30)
    assert other.acquire()
    run = job_run_now(name=daily.name)
    other.release()
    assert run.status == JobRun.Status.SKIPPED and "in progress" in run.error
    assert runs_counted() == 0


def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(register_jobs, daily):
    register_jobs(daily)
    stale = JobRunFactory.create(job_id=daily.name, status=JobRun.Status.RUNNING, finished_at=None)
    job_run_now(name=daily.name)
    stale.refresh_from_db()
    assert stale.status == JobRun.Status.FAILED and stale.error == INTERRUPTED


def test_unknown_jobs_and_unsupported_dry_runs_are_refused():
    with pytest.raises(NotFound):
        job_run_now(name="no_such_job")
    with pytest.raises(ValidationFailed):
        job_run_now(name="backup_data", dry_run=True)
    assert not JobRun.objects.exists()
