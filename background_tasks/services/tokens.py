"""Token cleanup: rows that can never be used again. Valid tokens are never touched."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import Model, Q, QuerySet
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from chat.models import IdempotencyRecord
from chat.services import IDEMPOTENCY_WINDOW
from users.models import AccountToken

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000


def _delete_in_batches(queryset: QuerySet[Model], batch_size: int) -> int:
    model = queryset.model
    deleted = 0
    while ids := list(queryset.order_by().values_list("pk", flat=True)[:batch_size]):
        _, by_model = model._default_manager.filter(pk__in=ids).delete()
        deleted += by_model.get(model._meta.label, 0)
    return deleted


def expired_tokens_delete(
    *, dry_run: bool = False, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Delete (or, dry, count) expired or used account tokens, expired JWT bookkeeping rows
    (outstanding tokens and their blacklist entries) and idempotency records past their window."""
    now = now or timezone.now()
    targets: dict[str, QuerySet[Model]] = {
        "account_tokens_deleted": AccountToken.objects.filter(Q(expires_at__lte=now) | Q(used_at__isnull=False)),
        # Blacklist entries first: deleting an outstanding token would cascade to its entry uncounted.
        "blacklisted_tokens_deleted": BlacklistedToken.objects.filter(token__expires_at__lte=now),
        "outstanding_tokens_deleted": OutstandingToken.objects.filter(expires_at__lte=now),
        "idempotency_records_deleted": IdempotencyRecord.objects.filter(created_at__lt=now - IDEMPOTENCY_WINDOW),
    }
    if dry_run:
        return {name: queryset.count() for name, queryset in targets.items()}
    counts = {name: _delete_in_batches(queryset, batch_size) for name, queryset in targets.items()}
    logger.info("Token cleanup: %s", counts)
    return counts
