"""Operations endpoints (staff only): the maintenance jobs and running one now."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from background_tasks import selectors
from background_tasks.runner import job_run_now
from background_tasks.serializers import JobRunRequestSerializer, JobRunSerializer, JobSerializer
from utils.pagination import StandardPagination
from utils.schema import error_responses

TAG = ["operations"]
_RUN: dict[str, Any] = {
    "id": 41,
    "job_id": "prune_chat_history",
    "trigger": "schedule",
    "dry_run": False,
    "status": "succeeded",
    "scheduled_for": "2026-11-21T02:00:00Z",
    "started_at": "2026-11-21T02:00:00.012Z",
    "finished_at": "2026-11-21T02:00:01.310Z",
    "duration_ms": 1298,
    "result": {"messages_deleted": 1840, "sessions_deleted": 112, "empty_sessions_deleted": 9},
    "error": "",
}
_JOB = {
    "id": "prune_chat_history",
    "description": "Delete chat messages older than CHAT_RETENTION_DAYS, then the sessions this left empty.",
    "schedule": "0 2 * * *",
    "supports_dry_run": True,
    "next_run_time": "2026-11-22T02:00:00Z",
    "recent_runs": [_RUN],
}


class JobListApi(APIView):
    permission_classes = [IsAdminUser]
    pagination_class = StandardPagination  # read by the schema generator (page parameters, envelope)

    @extend_schema(
        tags=TAG,
        summary="List the maintenance jobs (staff)",
        description="Each job with its schedule (crontab, UTC), its next run time and its last five runs.",
        responses={200: JobSerializer(many=True), **error_responses(400, 401, 403, 404)},
        examples=[
            OpenApiExample(
                "Jobs",
                value=_JOB,  # the generator wraps it in the page envelope
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(selectors.job_list(), request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)


class JobRunApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=TAG,
        summary="Run a maintenance job now (staff)",
        description="Runs the job synchronously and returns the recorded run. A job that fails is "
        "recorded as `failed` (with the error) and alerts the admins; a run while another run of the "
        "same job is in progress is recorded as `skipped`. `dry_run` is accepted by "
        "prune_chat_history and cleanup_tokens: it reports what would be deleted.",
        request=JobRunRequestSerializer,
        responses={200: JobRunSerializer, **error_responses(400, 401, 403, 404, 503)},
        examples=[
            OpenApiExample("Dry run", value={"dry_run": True}, request_only=True),
            OpenApiExample(
                "Recorded run",
                value=_RUN | {"trigger": "manual", "dry_run": True, "scheduled_for": None},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request, job_id: str) -> Response:
        body = JobRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = job_run_now(name=job_id, dry_run=body.validated_data["dry_run"])
        return Response(JobRunSerializer(run).data)
