"""Run history of the maintenance jobs: one row per run, scheduled or by hand."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class JobRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "By hand"

    job_id = models.CharField(max_length=100)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="The tick this run is for; empty by hand.")
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Counts returned by the job.")
    error = models.TextField(blank=True, default="", help_text="Traceback of a failure, or why a run was skipped.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job_id", "-started_at"], name="jobrun_job_recent"),
            models.Index(fields=["status", "-started_at"], name="jobrun_status_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)
