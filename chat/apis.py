"""Chat endpoints: thin views over ``chat.services`` and ``chat.selectors``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from chat import selectors, services
from chat.exports import MarkdownRenderer, session_export
from chat.history import history_json
from chat.models import ChatSession
from chat.serializers import (
    FeedbackSerializer,
    HistorySerializer,
    MessageListQuerySerializer,
    MessagePageSerializer,
    MessageSerializer,
    SendInputSerializer,
    SendOutputSerializer,
    SessionInputSerializer,
    SessionRenameSerializer,
    SessionSerializer,
)
from chat.stream_slots import released_after, stream_slot_acquire
from chat.streaming import EventStreamRenderer, event_stream, primed_events
from users.selectors import request_user
from utils.exceptions import NotFound, ValidationFailed
from utils.pagination import StandardPagination
from utils.schema import error_responses
from utils.throttling import ScopedThrottle

TAG = ["chat"]
_SESSION = {
    "id": 3,
    "title": "Password reset",
    "created_at": "2026-11-21T09:30:00Z",
    "updated_at": "2026-11-21T09:31:02Z",
    "message_count": 2,
}
_SOURCE = {
    "document_id": 12,
    "title": "Reset a forgotten password",
    "category": "Guide",
    "source": "guides/reset-a-forgotten-password.md",
    "score": 0.73,
    "snippet": "Ask for a reset email at POST /api/auth/password/reset/ …",
}
_USER_MESSAGE = {
    "id": 41,
    "session_id": 3,
    "sender": "user",
    "content": "How do I reset my password?",
    "created_at": "2026-11-21T09:31:00Z",
    "answer_status": None,
    "abstain_reason": None,
    "citations": [],
    "sources": [],
    "degraded": False,
    "latency_ms": None,
    "provider": None,
    "model": None,
    "usage": None,
    "feedback": None,
}
_BOT_MESSAGE = _USER_MESSAGE | {
    "id": 42,
    "sender": "bot",
    "created_at": "2026-11-21T09:31:01Z",
    "content": "Ask for a reset email at POST /api/auth/password/reset/ with your address [1].",
    "answer_status": "answered",
    "citations": [
        {
            "n": 1,
            "document_id": 7,
            "chunk_id": 31,
            "quote": "Ask for a reset email at POST /api/auth/password/reset/ with your email address.",
        }
    ],
    "sources": [_SOURCE],
    "latency_ms": 38,
    "provider": "extractive",
    "model": "extractive-v2",
}


# With OpenAPI 3.0 an event stream's schema describes one event (3.2 calls it ``itemSchema``).
_SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["user_message", "sources", "delta", "done", "error"]},
        "data": {
            "type": "string",
            "description": "JSON: the stored message (`user_message`, `done`), the list of sources (`sources`), "
            "`{text}` (`delta`) or `{detail, code}` (`error`).",
        },
    },
}


def _session_or_404(request: Request, session_id: int, *, counted: bool = True) -> ChatSession:
    """The caller's session (with ``message_count`` when ``counted``); anyone else's is a 404."""
    select = selectors.session_get if counted else selectors.session_owned
    session = select(user=request_user(request), session_id=session_id)
    if session is None:
        raise NotFound("Session not found.")
    return session


def _example(name: str, value: Any, code: int = 200) -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(code)])


class JsonErrorsApi(APIView):
    """For views that also render streams or files: errors are always the JSON envelope."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # DRF answers an unknown ``?format=`` with 404 but ignores an empty or repeated one: 404 too.
        formats = request.query_params.getlist(api_settings.URL_FORMAT_OVERRIDE or "format")
        known = {renderer.format for renderer in self.get_renderers()}
        if not force and formats and (len(formats) > 1 or formats[0] not in known):
            raise NotFound("Unknown format.")
        return super().perform_content_negotiation(request, force)

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)


class SessionListApi(APIView):
    pagination_class = StandardPagination  # read by the schema generator (page parameters, envelope)
    throttle_scope = "session_create"

    def get_throttles(self) -> list[Any]:
        # Opening sessions is limited per user (empty ones are pruned after a day); listing is not.
        return [ScopedThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        tags=TAG,
        summary="Your sessions, most recent activity first",
        responses={200: SessionSerializer(many=True), **error_responses(400, 401, 404)},
        examples=[_example("Page", _SESSION)],  # the generator wraps it in the page envelope
    )
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(selectors.session_list(user=request_user(request)), request, view=self)
        return paginator.get_paginated_response(SessionSerializer(page, many=True).data)

    @extend_schema(
        tags=TAG,
        summary="Open a session",
        description="The title is optional: an untitled session takes its first question as title. Limited "
        "per user (`THROTTLE_SESSION_CREATE`, 60 an hour); a session that never got a message is deleted "
        "a day after its last activity.",
        request=SessionInputSerializer,
        responses={201: SessionSerializer, **error_responses(400, 401, 429)},
        examples=[
            OpenApiExample("Titled", value={"title": "Password reset"}, request_only=True),
            _example("Created", _SESSION | {"message_count": 0}, 201),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = SessionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = services.session_create(user=request_user(request), **serializer.validated_data)
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="One session",
        responses={200: SessionSerializer, **error_responses(401, 404)},
        examples=[_example("Session", _SESSION)],
    )
    def get(self, request: Request, session_id: int) -> Response:
        return Response(SessionSerializer(_session_or_404(request, session_id)).data)

    @extend_schema(
        tags=TAG,
        summary="Rename a session",
        request=SessionRenameSerializer,
        responses={200: SessionSerializer, **error_responses(400, 401, 404)},
        examples=[
            OpenApiExample("Rename", value={"title": "Resetting my password"}, request_only=True),
            _example("Renamed", _SESSION | {"title": "Resetting my password"}),
        ],
    )
    def patch(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id)
        serializer = SessionRenameSerializer(data=request.data, partial=True)  # PATCH: absent means unchanged
        serializer.is_valid(raise_exception=True)
        if "title" in serializer.validated_data:
            services.session_rename(session=session, title=serializer.validated_data["title"])
        return Response(SessionSerializer(_session_or_404(request, session_id)).data)

    @extend_schema(
        tags=TAG, summary="Delete a session and its messages", responses={204: None, **error_responses(401, 404)}
    )
    def delete(self, request: Request, session_id: int) -> Response:
        services.session_delete(session=_session_or_404(request, session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChatThrottle(ScopedThrottle):
    pass


class SessionMessagesApi(JsonErrorsApi):
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    throttle_scope = "chat"

    def get_throttles(self) -> list[Any]:
        return [ChatThrottle()] if self.request.method == "POST" else []

    def get_renderers(self) -> list[Any]:
        # Only an answer streams; a page of messages is JSON (also what the schema generator reads).
        if self.request is not None and self.request.method != "POST":
            return [JSONRenderer()]
        return super().get_renderers()

    @extend_schema(
        tags=TAG,
        summary="A session's messages, oldest first",
        description=(
            "Cursor pagination: `?after=<message id>` for newer messages, `?before=<message id>` for older; "
            "both together bound a window (the newest page inside it)."
        ),
        parameters=[MessageListQuerySerializer],
        responses={200: MessagePageSerializer, **error_responses(400, 401, 404)},
        examples=[
            _example("Page", {"count": 2, "next": None, "previous": None, "results": [_USER_MESSAGE, _BOT_MESSAGE]})
        ],
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id, counted=False)
        query = MessageListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        before, after = query.validated_data.get("before"), query.validated_data.get("after")
        size = min(query.validated_data.get("page_size", 50), 100)
        queryset = selectors.message_list(user=request_user(request), session=session)
        if before is not None:
            window = queryset.filter(id__gt=after) if after is not None else queryset
            older = list(window.filter(id__lt=before).order_by("-id")[: size + 1])
            has_older = len(older) > size
            items = older[:size][::-1]
            has_newer = queryset.filter(id__gte=before).exists()
        else:
            start = queryset.filter(id__gt=after) if after is not None else queryset
            items = list(start.order_by("id")[: size + 1])
            has_newer = len(items) > size
            items = items[:size]
            has_older = after is not None and queryset.filter(id__lte=after).exists()
        base = request.build_absolute_uri(request.path)
        link = lambda key, value: f"{base}?{urlencode({key: value, 'page_size': size})}"  # noqa: E731
        return Response(
            {
                "count": queryset.count(),
                "next": link("after", items[-1].pk) if has_newer and items else None,
                "previous": link("before", items[0].pk) if has_older and items else None,
                "results": MessageSerializer(items, many=True).data,
            }
        )

    @extend_schema(
        tags=TAG,
        summary="Send a message and get a grounded answer",
        description=(
            "Stores your message first, then answers it from the knowledge base. With "
            "`Accept: text/event-stream` the answer streams as Server-Sent Events: `user_message`, "
            "`sources`, `delta`… and `done` (the stored answer), or `error`. An `Idempotency-Key` header "
            "makes retries safe: the same key within 24 h returns the first reply (same ids); the same key "
            "with different content is a 409. A 503 means your message is stored; retry with the same key. "
            "A user may have `CHAT_MAX_CONCURRENT_STREAMS` (default 2) answers streaming at once; one more is "
            "a 429 `too_many_streams` and stores nothing."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "maxLength": 255},
                OpenApiParameter.HEADER,
                required=False,
                description="Up to 255 characters.",
            )
        ],
        request=SendInputSerializer,
        responses={
            (201, "application/json"): SendOutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(_SSE_EVENT, description="The answer as Server-Sent Events."),
            **error_responses(400, 401, 404, 409, 429, 503),
        },
        examples=[
            OpenApiExample("Question", value={"content": "How do I reset my password?"}, request_only=True),
            _example("Answered", {"user_message": _USER_MESSAGE, "bot_message": _BOT_MESSAGE}, 201),
        ],
    )
    def post(self, request: Request, session_id: int) -> Response | StreamingHttpResponse:
        session = _session_or_404(request, session_id, counted=False)
        serializer = SendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ValidationFailed("Invalid input.", errors={"Idempotency-Key": ["At most 255 characters."]})
        user = request_user(request)
        if request.accepted_renderer.format == "sse":
            # Taken before anything is stored: a refused stream leaves no question behind.
            slot = stream_slot_acquire(user_id=user.pk)
            try:
                received = services.message_receive(
                    user=user, session=session, content=serializer.validated_data["content"], idempotency_key=key
                )
                events = primed_events(received)
            except BaseException:
                slot.release()
                raise
            response = StreamingHttpResponse(
                released_after(event_stream(received.user_message, events), slot), content_type="text/event-stream"
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
            return response
        received = services.message_receive(
            user=user, session=session, content=serializer.validated_data["content"], idempotency_key=key
        )
        bot = services.message_answer(received=received)
        body = {
            "user_message": MessageSerializer(received.user_message).data,
            "bot_message": MessageSerializer(bot).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class HistoryApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="Your chat history at a glance",
        description="The 20 most recently active sessions and the 20 most recent messages across them.",
        responses={200: HistorySerializer, **error_responses(401)},
        examples=[
            _example(
                "History",
                {
                    "sessions": [_SESSION],
                    "recent_messages": [_BOT_MESSAGE, _USER_MESSAGE],
                    "total_sessions": 1,
                    "total_messages": 2,
                },
            )
        ],
    )
    def get(self, request: Request) -> HttpResponse:
        # Already-rendered JSON (cached as bytes), so DRF's renderer is skipped.
        return HttpResponse(history_json(request_user(request)), content_type="application/json")


class FeedbackApi(APIView):
    @extend_schema(
        tags=TAG,
        summary="Rate an answer",
        description="Rating 1 (helpful) or -1; sending again overwrites.",
        request=FeedbackSerializer,
        responses={200: MessageSerializer, **error_responses(400, 401, 404)},
        examples=[
            OpenApiExample("Helpful", value={"rating": 1, "comment": "Exactly what I needed."}, request_only=True),
            _example(
                "Rated",
                _BOT_MESSAGE
                | {
                    "feedback": {"rating": 1, "comment": "Exactly what I needed.", "updated_at": "2026-11-21T09:32:00Z"}
                },
            ),
        ],
    )
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(user=request_user(request), message_id=message_id)
        if message is None:
            raise NotFound("Message not found.")
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.message_feedback(message=message, **serializer.validated_data)
        return Response(MessageSerializer(message).data)


class ExportApi(JsonErrorsApi):
    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @extend_schema(
        tags=TAG,
        summary="Download a whole session",
        parameters=[OpenApiParameter("format", str, enum=["json", "md"], description="Default json.")],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The session."),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The session as Markdown."),
            **error_responses(401, 404),
        },
        examples=[
            _example(
                "JSON",
                {"session": _SESSION, "messages": [_USER_MESSAGE, _BOT_MESSAGE], "exported_at": "2026-11-21T10:00:00Z"},
            )
        ],
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id)
        fmt = request.accepted_renderer.format
        filename = f"session-{session.pk}.{fmt}"
        return Response(
            session_export(session=session), headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )
