"""Deleting many rows in short transactions, for the cleanup services."""

from __future__ import annotations

from django.db.models import Model, QuerySet

BATCH_SIZE = 1000  # rows per DELETE: each statement stays short, so a big table is never locked for long


def delete_in_batches(queryset: QuerySet[Model], batch_size: int = BATCH_SIZE) -> int:
    """Delete the rows of ``queryset``, ``batch_size`` at a time; the number of its rows deleted."""
    model = queryset.model
    deleted = 0
    while ids := list(queryset.order_by().values_list("pk", flat=True)[:batch_size]):
        _, by_model = model._default_manager.filter(pk__in=ids).delete()
        deleted += by_model.get(model._meta.label, 0)
    return deleted
