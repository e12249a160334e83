"""``/api/ops/jobs/``: staff see every job and can run one now; others get the error envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from background_tasks.jobs import JOBS
from background_tasks.models import JobRun
from background_tasks.scheduler import scheduler_create
from tests.factories import AccountTokenFactory, JobRunFactory
from users.models import AccountToken

pytestmark = pytest.mark.django_db

LIST = "/api/ops/jobs/"


def run_url(job_id: str) -> str:
    return f"/api/ops/jobs/{job_id}/run/"


def test_staff_list_every_job_with_schedule_next_run_and_last_five_runs(staff_client):
    base = timezone.now() - timedelta(days=1)
    for minutes in range(7):
        JobRunFactory.create(job_id="prune_chat_history", started_at=base + timedelta(minutes=minutes))
    response = staff_client.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4 and [job["id"] for job in body["results"]] == list(JOBS)
    prune = body["results"][0]
    assert prune["schedule"] == "0 2 * * *" and prune["supports_dry_run"] is True and prune["description"]
    expected_next = JOBS["prune_chat_history"].trigger().get_next_fire_time(None, timezone.now())
    assert datetime.fromisoformat(prune["next_run_time"]) == expected_next
    started = [datetime.fromisoformat(run["started_at"]) for run in prune["recent_runs"]]
    assert len(started) == 5 and started == sorted(started, reverse=True)
    assert started[0] == base + timedelta(minutes=6)
    backup = body["results"][3]
    assert backup["id"] == "backup_data" and backup["recent_runs"] == []
    assert datetime.fromisoformat(backup["next_run_time"]).weekday() == 6  # Sunday


def test_next_run_time_comes_from_the_job_store_once_a_scheduler_registered_the_jobs(staff_client):
    scheduler = scheduler_create()
    scheduler.start(paused=True)
    moved = datetime(2030, 1, 6, 1, 0, tzinfo=UTC)
    scheduler.modify_job("backup_data", next_run_time=moved)
    scheduler.shutdown()
    jobs = {job["id"]: job for job in staff_client.get(LIST).json()["results"]}
    assert datetime.fromisoformat(jobs["backup_data"]["next_run_time"]) == moved


def test_staff_run_a_job_now_and_get_the_recorded_run(staff_client):
    AccountTokenFactory.create(expires_at=timezone.now() - timedelta(hours=1))
    response = staff_client.post(run_url("cleanup_tokens"), {"dry_run": True}, format="json")
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "succeeded" and run["dry_run"] is True and run["trigger"] == "manual"
    assert run["result"]["account_tokens_deleted"] == 1 and AccountToken.objects.count() == 1
    assert JobRun.objects.get(pk=run["id"]).job_id == "cleanup_tokens"

    response = staff_client.post(run_url("cleanup_tokens"))
    assert response.status_code == 200 and response.json()["dry_run"] is False
    assert not AccountToken.objects.exists()


def test_unknown_job_is_404_and_an_unsupported_dry_run_400(staff_client):
    response = staff_client.post(run_url("launch_rockets"), {}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    response = staff_client.post(run_url("send_daily_report"), {"dry_run": True}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "dry_run_unsupported"
    assert not JobRun.objects.exists()


@pytest.mark.parametrize(("method", "url"), [("get", LIST), ("post", run_url("cleanup_tokens"))])
def test_users_get_403_and_anonymous_401_in_the_envelope(api_client, anon_client, method, url):
    forbidden = getattr(api_client, method)(url)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "permission_denied"
    anonymous = getattr(anon_client, method)(url)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert not JobRun.objects.exists()


def test_endpoints_are_documented_under_operations(staff_client):
    schema = staff_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    listing, run = schema["paths"]["/api/ops/jobs/"]["get"], schema["paths"]["/api/ops/jobs/{job_id}/run/"]["post"]
    for operation in (listing, run):
        assert operation["tags"] == ["operations"] and operation["summary"]
        assert {"401", "403", "404"} <= set(operation["responses"])
    assert "JobRunRequest" in run["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert run["responses"]["200"]["content"]["application/json"]["examples"]
