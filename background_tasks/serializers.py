"""Input and output shapes of the operations API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from background_tasks.models import JobRun
from utils.serializers import StrictBooleanField


class JobRunSerializer(serializers.ModelSerializer[JobRun]):
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    result = serializers.DictField(child=serializers.IntegerField(), read_only=True, help_text="Counts by name.")

    class Meta:
        model = JobRun
        fields = [
            "id",
            "job_id",
            "trigger",
            "dry_run",
            "status",
            "scheduled_for",
            "started_at",
            "finished_at",
            "duration_ms",
            "result",
            "error",
        ]
        read_only_fields = fields


class JobSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    description = serializers.CharField()
    schedule = serializers.CharField(help_text="Crontab (minute hour day month weekday), UTC.")
    supports_dry_run = serializers.BooleanField()
    next_run_time = serializers.DateTimeField(allow_null=True)
    recent_runs = JobRunSerializer(many=True, help_text="The last five runs, newest first.")


class JobRunRequestSerializer(serializers.Serializer[Any]):
    dry_run = StrictBooleanField(
        default=False, help_text="Report what would be deleted without deleting (prune_chat_history, cleanup_tokens)."
    )
