"""``manage.py run_job``: runs and records a job, exits non-zero when it fails."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from background_tasks.models import JobRun
from chat.models import ChatMessage
from tests.factories import ChatMessageFactory

pytestmark = pytest.mark.django_db


def test_run_job_dry_run_reports_without_deleting():
    ChatMessageFactory.create(created_at=timezone.now() - timedelta(days=45))
    out = io.StringIO()
    call_command("run_job", "prune_chat_history", "--dry-run", stdout=out)
    assert "prune_chat_history: succeeded" in out.getvalue() and "nothing was deleted" in out.getvalue()
    assert "messages_deleted: 1" in out.getvalue() and ChatMessage.objects.count() == 1
    call_command("run_job", "prune_chat_history", stdout=io.StringIO())
    assert not ChatMessage.objects.exists()
    assert JobRun.objects.filter(trigger=JobRun.Trigger.MANUAL).count() == 2


def test_run_job_fails_loudly(register_jobs, failing):
    register_jobs(failing, keep_defaults=True)
    with pytest.raises(CommandError, match="boom: the job broke"):
        call_command("run_job", failing.name, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no dry run"):
        call_command("run_job", "backup_data", "--dry-run", stdout=io.StringIO())
