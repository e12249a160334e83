"""Admin: the job run history, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from background_tasks.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin[JobRun]):
    list_display = ("job_id", "status", "trigger", "dry_run", "scheduled_for", "started_at", "duration")
    list_filter = ("status", "job_id", "trigger", "dry_run")
    search_fields = ("job_id", "error")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    readonly_fields = (
        "job_id",
        "trigger",
        "scheduled_for",
        "dry_run",
        "status",
        "started_at",
        "finished_at",
        "result",
        "error",
    )

    @admin.display(description="duration (ms)")
    def duration(self, obj: JobRun) -> int | None:
        return obj.duration_ms

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
