"""OpenAPI documentation of the chat endpoints: the arguments of each view's ``extend_schema`` and
the examples they show (``chat.apis`` applies them as ``@schema.<view>_<method>``).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

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
from utils.schema import error_responses, response_example

TAG = ["chat"]


_SESSION = {
    "id": 3,
    "title": "Password reset",
    "workspace": 7,
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


session_list_get = extend_schema(
    tags=TAG,
    summary="Your sessions, most recent activity first",
    responses={200: SessionSerializer(many=True), **error_responses(400, 401, 404)},
    examples=[response_example("Page", _SESSION)],  # the generator wraps it in the page envelope
)


session_list_post = extend_schema(
    tags=TAG,
    summary="Open a session",
    description="The title is optional: an untitled session takes its first question as title. The "
    "session belongs to a workspace (default: your personal one; with an API key, the key's): its answers "
    "read that workspace's documents and the shared knowledge base, unless the workspace turned the shared "
    "base off. A workspace you are not a member of is a 404. Limited per user (`THROTTLE_SESSION_CREATE`, "
    "60 an hour); a session that never got a message is deleted a day after its last activity.",
    request=SessionInputSerializer,
    responses={201: SessionSerializer, **error_responses(400, 401, 404, 429)},
    examples=[
        OpenApiExample("Titled", value={"title": "Password reset"}, request_only=True),
        OpenApiExample("In a team workspace", value={"title": "Onboarding", "workspace": 7}, request_only=True),
        response_example("Created", _SESSION | {"message_count": 0}, 201),
    ],
)


session_detail_get = extend_schema(
    tags=TAG,
    summary="One session",
    responses={200: SessionSerializer, **error_responses(401, 404)},
    examples=[response_example("Session", _SESSION)],
)


session_detail_patch = extend_schema(
    tags=TAG,
    summary="Rename a session",
    request=SessionRenameSerializer,
    responses={200: SessionSerializer, **error_responses(400, 401, 404)},
    examples=[
        OpenApiExample("Rename", value={"title": "Resetting my password"}, request_only=True),
        response_example("Renamed", _SESSION | {"title": "Resetting my password"}),
    ],
)


session_detail_delete = extend_schema(
    tags=TAG, summary="Delete a session and its messages", responses={204: None, **error_responses(401, 404)}
)


session_messages_get = extend_schema(
    tags=TAG,
    summary="A session's messages, oldest first",
    description=(
        "Cursor pagination: `?after=<message id>` for newer messages, `?before=<message id>` for older; "
        "both together bound a window (the newest page inside it)."
    ),
    parameters=[MessageListQuerySerializer],
    responses={200: MessagePageSerializer, **error_responses(400, 401, 404)},
    examples=[
        response_example("Page", {"count": 2, "next": None, "previous": None, "results": [_USER_MESSAGE, _BOT_MESSAGE]})
    ],
)


session_messages_post = extend_schema(
    tags=TAG,
    summary="Send a message and get a grounded answer",
    description=(
        "Stores your message first, then answers it from the knowledge base. With "
        "`Accept: text/event-stream` the answer streams as Server-Sent Events: `user_message`, "
        "`sources`, `delta`… and `done` (the stored answer), or `error`. An `Idempotency-Key` header "
        "makes retries safe: the same key within 24 h returns the first reply (same ids); the same key "
        "with different content is a 409. A 503 means your message is stored; retry with the same key. "
        "A user may have `CHAT_MAX_CONCURRENT_STREAMS` (default 2) answers streaming at once; one more is "
        "a 429 `too_many_streams` and stores nothing. Each user has a daily quota (`CHAT_DAILY_QUOTA`, 429 "
        "`daily_quota_exceeded`) and so has each workspace across its members (its plan's messages per day, "
        "429 `workspace_message_quota_exceeded`); both come with `Retry-After` and store nothing."
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
        response_example("Answered", {"user_message": _USER_MESSAGE, "bot_message": _BOT_MESSAGE}, 201),
    ],
)


history_get = extend_schema(
    tags=TAG,
    summary="Your chat history at a glance",
    description="The 20 most recently active sessions and the 20 most recent messages across them.",
    responses={200: HistorySerializer, **error_responses(401)},
    examples=[
        response_example(
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


feedback_post = extend_schema(
    tags=TAG,
    summary="Rate an answer",
    description="Rating 1 (helpful) or -1; sending again overwrites.",
    request=FeedbackSerializer,
    responses={200: MessageSerializer, **error_responses(400, 401, 404)},
    examples=[
        OpenApiExample("Helpful", value={"rating": 1, "comment": "Exactly what I needed."}, request_only=True),
        response_example(
            "Rated",
            _BOT_MESSAGE
            | {"feedback": {"rating": 1, "comment": "Exactly what I needed.", "updated_at": "2026-11-21T09:32:00Z"}},
        ),
    ],
)


export_get = extend_schema(
    tags=TAG,
    summary="Download a whole session",
    parameters=[OpenApiParameter("format", str, enum=["json", "md"], description="Default json.")],
    responses={
        (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The session."),
        (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="The session as Markdown."),
        **error_responses(401, 404),
    },
    examples=[
        response_example(
            "JSON",
            {"session": _SESSION, "messages": [_USER_MESSAGE, _BOT_MESSAGE], "exported_at": "2026-11-21T10:00:00Z"},
        )
    ],
)
