"""Token cleanup removes expired (or used) rows only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from background_tasks.jobs import cleanup_tokens
from background_tasks.runner import job_run_now
from chat.models import IdempotencyRecord
from chat.services import idempotency_records_delete
from tests.factories import (
    AccountTokenFactory,
    BlacklistedTokenFactory,
    IdempotencyRecordFactory,
    OutstandingTokenFactory,
)
from users.models import AccountToken
from users.services import expired_tokens_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokens():
    now = timezone.now()
    past = now - timedelta(minutes=1)
    return {
        "valid_account": AccountTokenFactory.create(),
        "expired_account": AccountTokenFactory.create(expires_at=past),
        "used_account": AccountTokenFactory.create(used_at=past),
        "valid_outstanding": OutstandingTokenFactory.create(),
        "valid_blacklisted": BlacklistedTokenFactory.create(),  # revoked but not yet expired: must stay
        "expired_outstanding": OutstandingTokenFactory.create(expires_at=past),
        "expired_blacklisted": BlacklistedTokenFactory.create(token__expires_at=past),
        "recent_record": IdempotencyRecordFactory.create(created_at=now - timedelta(hours=23)),
        "old_record": IdempotencyRecordFactory.create(created_at=now - timedelta(hours=25)),
    }


def test_cleanup_removes_expired_rows_only(tokens):
    counts = expired_tokens_delete(batch_size=1) | idempotency_records_delete(batch_size=1)
    assert counts == {
        "account_tokens_deleted": 2,
        "blacklisted_tokens_deleted": 1,
        "outstanding_tokens_deleted": 2,
        "idempotency_records_deleted": 1,
    }
    assert list(AccountToken.objects.values_list("pk", flat=True)) == [tokens["valid_account"].pk]
    assert set(OutstandingToken.objects.values_list("pk", flat=True)) == {
        tokens["valid_outstanding"].pk,
        tokens["valid_blacklisted"].token_id,
    }
    assert list(BlacklistedToken.objects.values_list("pk", flat=True)) == [tokens["valid_blacklisted"].pk]
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [tokens["recent_record"].pk]


def test_dry_run_counts_without_deleting_and_a_second_run_finds_nothing(tokens):
    run = job_run_now(name="cleanup_tokens", dry_run=True)
    assert run.result["outstanding_tokens_deleted"] == 2 and run.result["account_tokens_deleted"] == 2
    assert AccountToken.objects.count() == 3 and OutstandingToken.objects.count() == 4
    cleanup_tokens()
    assert set(cleanup_tokens().values()) == {0}
