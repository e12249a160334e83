"""Reads for the operations API: the jobs with their schedules and recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from background_tasks import jobs
from background_tasks.models import JobRun
from background_tasks.scheduler import next_run_time

RECENT_RUNS = 5


@dataclass(frozen=True)
class JobInfo:
    id: str
    description: str
    schedule: str
    supports_dry_run: bool
    next_run_time: datetime | None
    recent_runs: list[JobRun]


def job_runs_recent(*, job_id: str, limit: int = RECENT_RUNS) -> QuerySet[JobRun]:
    return JobRun.objects.filter(job_id=job_id).order_by("-started_at", "-id")[:limit]


def job_list() -> list[JobInfo]:
    """Every defined job (staff only: jobs belong to the deployment, not to a user)."""
    return [
        JobInfo(
            id=spec.name,
            description=spec.description,
            schedule=spec.schedule,
            supports_dry_run=spec.supports_dry_run,
            next_run_time=next_run_time(spec),
            recent_runs=list(job_runs_recent(job_id=spec.name)),
        )
        for spec in jobs.JOBS.values()
    ]
