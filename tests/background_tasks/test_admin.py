"""The job run history in the admin: listed, filterable, read-only."""

from __future__ import annotations

import pytest
from django.test import Client

from background_tasks.models import JobRun
from tests.factories import JobRunFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_job_runs_are_listed_and_read_only():
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    run = JobRunFactory.create(job_id="backup_data", status=JobRun.Status.FAILED, error="OSError: disk full")
    JobRunFactory.create(job_id="cleanup_tokens")
    listing = client.get("/admin/background_tasks/jobrun/?status__exact=failed")
    assert listing.status_code == 200
    rows = listing.content.decode().split('id="result_list"')[1].split("</table>")[0]
    assert "backup_data" in rows and "cleanup_tokens" not in rows
    detail = client.get(f"/admin/background_tasks/jobrun/{run.pk}/change/")
    assert detail.status_code == 200 and "OSError: disk full" in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert client.get("/admin/background_tasks/jobrun/add/").status_code == 403
    assert client.post(f"/admin/background_tasks/jobrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert JobRun.objects.filter(pk=run.pk).exists()
