"""Chat endpoints: thin views over ``chat.services`` and ``chat.selectors``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from chat import schema, selectors, services
from chat.exports import MarkdownRenderer, session_export
from chat.history import history_json
from chat.models import ChatSession
from chat.serializers import (
    FeedbackSerializer,
    MessageListQuerySerializer,
    MessageSerializer,
    SendInputSerializer,
    SessionInputSerializer,
    SessionRenameSerializer,
    SessionSerializer,
)
from chat.stream_slots import released_after, stream_slot_acquire
from chat.streaming import EventStreamRenderer, event_stream, primed_events
from users.selectors import request_user
from utils.exceptions import NotFound, ValidationFailed
from utils.pagination import StandardPagination
from utils.throttling import ScopedThrottle
from workspaces.access import api_key_of, workspace_resolve


def _only_workspace(request: Request) -> int | None:
    """A request made with an API key reaches only the key's workspace."""
    api_key = api_key_of(request)
    return api_key.workspace_id if api_key is not None else None


def _session_or_404(request: Request, session_id: int, *, counted: bool = True) -> ChatSession:
    """The caller's session (with ``message_count`` when ``counted``); anyone else's, one in a
    workspace the caller has left, or (with an API key) one in another workspace is a 404."""
    select = selectors.session_get if counted else selectors.session_owned
    session = select(user=request_user(request), session_id=session_id, only_workspace_id=_only_workspace(request))
    if session is None:
        raise NotFound("Session not found.")
    return session


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

    @schema.session_list_get
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        sessions = selectors.session_list(user=request_user(request), only_workspace_id=_only_workspace(request))
        page = paginator.paginate_queryset(sessions, request, view=self)
        return paginator.get_paginated_response(SessionSerializer(page, many=True).data)

    @schema.session_list_post
    def post(self, request: Request) -> Response:
        serializer = SessionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request_user(request)
        workspace = workspace_resolve(
            user=user, workspace_id=serializer.validated_data.get("workspace"), api_key=api_key_of(request)
        )
        session = services.session_create(user=user, title=serializer.validated_data["title"], workspace=workspace)
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @schema.session_detail_get
    def get(self, request: Request, session_id: int) -> Response:
        return Response(SessionSerializer(_session_or_404(request, session_id)).data)

    @schema.session_detail_patch
    def patch(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id)
        serializer = SessionRenameSerializer(data=request.data, partial=True)  # PATCH: absent means unchanged
        serializer.is_valid(raise_exception=True)
        if "title" in serializer.validated_data:
            services.session_rename(session=session, title=serializer.validated_data["title"])
        return Response(SessionSerializer(_session_or_404(request, session_id)).data)

    @schema.session_detail_delete
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

    @schema.session_messages_get
    def get(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id, counted=False)
        query = MessageListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        before, after = query.validated_data.get("before"), query.validated_data.get("after")
        size = min(query.validated_data.get("page_size", 50), 100)
        page = selectors.message_page(
            user=request_user(request), session=session, size=size, before=before, after=after
        )
        items = page.items
        base = request.build_absolute_uri(request.path)
        link = lambda key, value: f"{base}?{urlencode({key: value, 'page_size': size})}"  # noqa: E731
        return Response(
            {
                "count": page.count,
                "next": link("after", items[-1].pk) if page.has_newer and items else None,
                "previous": link("before", items[0].pk) if page.has_older and items else None,
                "results": MessageSerializer(items, many=True).data,
            }
        )

    @schema.session_messages_post
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
    @schema.history_get
    def get(self, request: Request) -> HttpResponse:
        # Already-rendered JSON (cached as bytes), so DRF's renderer is skipped.
        body = history_json(request_user(request), only_workspace_id=_only_workspace(request))
        return HttpResponse(body, content_type="application/json")


class FeedbackApi(APIView):
    @schema.feedback_post
    def post(self, request: Request, message_id: int) -> Response:
        message = selectors.message_get(
            user=request_user(request), message_id=message_id, only_workspace_id=_only_workspace(request)
        )
        if message is None:
            raise NotFound("Message not found.")
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.message_feedback(message=message, **serializer.validated_data)
        return Response(MessageSerializer(message).data)


class ExportApi(JsonErrorsApi):
    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @schema.export_get
    def get(self, request: Request, session_id: int) -> Response:
        session = _session_or_404(request, session_id)
        fmt = request.accepted_renderer.format
        filename = f"session-{session.pk}.{fmt}"
        return Response(
            session_export(session=session), headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )
