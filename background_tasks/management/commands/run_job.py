"""``manage.py run_job NAME [--dry-run]``: run one maintenance job now, recorded like a scheduled run.

``manage.py run_job send_daily_report --date YYYY-MM-DD`` instead prints that day's report: no
email is sent and no run is recorded.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from background_tasks import jobs
from background_tasks.models import JobRun
from background_tasks.runner import job_run_now
from background_tasks.services.reports import daily_report_preview
from utils.exceptions import ServiceError


class Command(BaseCommand):
    help = "Run one maintenance job now and record the run. Exits non-zero if it fails or is skipped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=sorted(jobs.JOBS), help="The job to run.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would be deleted without deleting (prune_chat_history, cleanup_tokens).",
        )
        parser.add_argument(
            "--date",
            metavar="YYYY-MM-DD",
            help="send_daily_report only: print the report of this UTC day instead of emailing it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["date"] is not None:
            self._preview(options["name"], options["date"])
            return
        try:
            run = job_run_now(name=options["name"], dry_run=options["dry_run"])
        except ServiceError as exc:
            raise CommandError(exc.detail) from exc
        dry = " (dry run: nothing was deleted)" if run.dry_run else ""
        self.stdout.write(f"{run.job_id}: {run.status} in {run.duration_ms} ms{dry}")
        for key, value in run.result.items():
            self.stdout.write(f"  {key}: {value}")
        if run.status == JobRun.Status.FAILED:
            last = run.error.strip().splitlines()[-1] if run.error.strip() else "unknown error"
            raise CommandError(f"{run.job_id} failed: {last} (run #{run.pk} holds the traceback)")
        if run.status == JobRun.Status.SKIPPED:
            raise CommandError(f"{run.job_id} skipped: {run.error}")

    def _preview(self, name: str, value: str) -> None:
        if name != "send_daily_report":
            raise CommandError("--date applies only to send_daily_report.")
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise CommandError(f"--date {value!r} is not a date like 2026-11-20.") from exc
        if day > timezone.now().date():
            raise CommandError(f"--date {value} is in the future.")
        subject, text = daily_report_preview(day=day)
        self.stdout.write(f"Subject: {subject}\n\n")
        self.stdout.write(text)
