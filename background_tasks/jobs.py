"""The maintenance jobs: thin wrappers over the services, and the registry the scheduler reads.

Every job is idempotent (running it twice does no harm) and returns a dict of counts. Schedules
are crontab strings from settings (``JOB_<NAME>_CRON``), always in UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apscheduler.triggers.base import BaseTrigger
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from background_tasks.crontab import cron_trigger
from background_tasks.services.backups import backup_create
from background_tasks.services.reports import daily_report_send
from chat.services import chat_history_prune, idempotency_records_delete
from users.services import expired_tokens_delete

logger = logging.getLogger(__name__)

Counts = dict[str, int]


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    run: Callable[..., Counts]  # takes dry_run=True when supports_dry_run
    cron_setting: str
    supports_dry_run: bool = False

    @property
    def schedule(self) -> str:
        return str(getattr(settings, self.cron_setting))

    def trigger(self) -> BaseTrigger:
        try:
            return cron_trigger(self.schedule)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{self.cron_setting}={self.schedule!r} is not a valid crontab: {exc}") from exc


def prune_chat_history(*, dry_run: bool = False) -> Counts:
    return chat_history_prune(retention_days=settings.CHAT_RETENTION_DAYS, dry_run=dry_run)


def cleanup_tokens(*, dry_run: bool = False) -> Counts:
    """Rows that can never be used again: expired or used tokens, idempotency records past their window."""
    counts = expired_tokens_delete(dry_run=dry_run) | idempotency_records_delete(dry_run=dry_run)
    if not dry_run:
        logger.info("Token cleanup: %s", counts)
    return counts


def send_daily_report() -> Counts:
    return daily_report_send()


def backup_data() -> Counts:
    return backup_create(directory=Path(settings.BACKUP_DIR), keep=settings.BACKUP_KEEP)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            "prune_chat_history",
            "Delete chat messages older than CHAT_RETENTION_DAYS, then the sessions this left empty, then "
            "sessions that never got a message and were idle for a day.",
            prune_chat_history,
            "JOB_PRUNE_CHAT_HISTORY_CRON",
            supports_dry_run=True,
        ),
        JobSpec(
            "cleanup_tokens",
            "Delete expired or used account tokens, expired JWT outstanding/blacklist rows and "
            "idempotency records older than 24 hours.",
            cleanup_tokens,
            "JOB_CLEANUP_TOKENS_CRON",
            supports_dry_run=True,
        ),
        JobSpec(
            "send_daily_report",
            "Email yesterday's usage report (UTC day) to REPORT_RECIPIENTS.",
            send_daily_report,
            "JOB_SEND_DAILY_REPORT_CRON",
        ),
        JobSpec(
            "backup_data",
            "Write a compressed backup of users, chats and documents to BACKUP_DIR; keep the newest BACKUP_KEEP.",
            backup_data,
            "JOB_BACKUP_DATA_CRON",
        ),
    )
}


def job_get(name: str) -> JobSpec | None:
    return JOBS.get(name)
