"""Input and output shapes of the chat API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from chat.models import ChatMessage, ChatSession
from rag.serializers import SourceSerializer
from utils.serializers import QueryIntegerField, StrictCharField, StrictChoiceField

MAX_MESSAGE_CHARS = 4000
# How answers declined before the answer contract recorded a status.
LEGACY_NO_INFORMATION = "I don't have specific information"


_DATETIME = serializers.DateTimeField()


def _timestamp(value: Any) -> str | None:
    return _DATETIME.to_representation(value) if value else None


class SessionSerializer(serializers.ModelSerializer[ChatSession]):
    message_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = ChatSession
        fields = ["id", "title", "workspace", "created_at", "updated_at", "message_count"]
        read_only_fields = fields

    def to_representation(self, instance: ChatSession) -> dict[str, Any]:
        # Hand-written for speed: history and list pages render many of these per request.
        return {
            "id": instance.pk,
            "title": instance.title,
            "workspace": instance.workspace_id,
            "created_at": _timestamp(instance.created_at),
            "updated_at": _timestamp(instance.updated_at),
            "message_count": getattr(instance, "message_count", 0),
        }


class WorkspaceIdField(serializers.IntegerField):
    """A workspace id as a JSON integer (DRF would also take ``"3"``, ``3.0`` or ``true``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=10**18 - 1, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class SessionInputSerializer(serializers.Serializer[Any]):
    title = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    workspace = WorkspaceIdField(
        required=False,
        help_text="A workspace you are a member of (another is a 404). Default: the API key's workspace, "
        "else your personal workspace. Answers in the session read its documents and the shared base.",
    )


class SessionRenameSerializer(serializers.Serializer[Any]):
    title = StrictCharField(max_length=200)


class FeedbackSerializer(serializers.Serializer[Any]):
    rating = StrictChoiceField(choices=[1, -1])
    comment = StrictCharField(max_length=1000, required=False, allow_blank=True, default="")


class FeedbackOutputSerializer(serializers.Serializer[Any]):
    rating = serializers.IntegerField()
    comment = serializers.CharField()
    updated_at = serializers.DateTimeField()


class UsageSerializer(serializers.Serializer[Any]):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class CitationSerializer(serializers.Serializer[Any]):
    n = serializers.IntegerField(help_text="The marker [n] in the answer: the n-th of its sources.")
    document_id = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    quote = serializers.CharField(help_text="Text of that chunk the marked sentence rests on (checked on the server).")


def _answer_status(message: ChatMessage, meta: dict[str, Any]) -> tuple[str | None, str | None]:
    """The stored status; answers stored before it existed read as abstained when they declined."""
    if message.sender != ChatMessage.Sender.BOT:
        return None, None
    if "answer_status" in meta:
        return meta["answer_status"], meta.get("abstain_reason")
    if message.content.startswith(LEGACY_NO_INFORMATION):
        return "abstained", "no_match" if not meta.get("sources") else "low_support"
    return "answered", None


class MessageSerializer(serializers.ModelSerializer[ChatMessage]):
    session_id = serializers.IntegerField(read_only=True)
    answer_status = serializers.ChoiceField(
        choices=["answered", "abstained"],
        read_only=True,
        allow_null=True,
        help_text="Answers only (null for user messages): `abstained` when the knowledge base does not support one.",
    )
    abstain_reason = serializers.ChoiceField(
        choices=["no_match", "low_support", "model_declined"],
        read_only=True,
        allow_null=True,
        help_text="Why it abstained: nothing retrieved, evidence too weak, or the model said it has no information.",
    )
    citations = CitationSerializer(many=True, read_only=True)
    sources = SourceSerializer(many=True, read_only=True)
    degraded = serializers.BooleanField(read_only=True)
    latency_ms = serializers.IntegerField(read_only=True, allow_null=True)
    provider = serializers.CharField(read_only=True, allow_null=True)
    model = serializers.CharField(read_only=True, allow_null=True)
    usage = UsageSerializer(read_only=True, allow_null=True)
    feedback = FeedbackOutputSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ChatMessage
        fields = [
            "id",
            "session_id",
            "sender",
            "content",
            "created_at",
            "answer_status",
            "abstain_reason",
            "citations",
            "sources",
            "degraded",
            "latency_ms",
            "provider",
            "model",
            "usage",
            "feedback",
        ]
        read_only_fields = fields

    def to_representation(self, instance: ChatMessage) -> dict[str, Any]:
        meta = instance.metadata or {}
        feedback = None
        if instance.feedback_rating is not None:
            feedback = {
                "rating": instance.feedback_rating,
                "comment": instance.feedback_comment,
                "updated_at": _timestamp(instance.feedback_at),
            }
        status, reason = _answer_status(instance, meta)
        return {
            "id": instance.pk,
            "session_id": instance.session_id,
            "sender": instance.sender,
            "content": instance.content,
            "created_at": _timestamp(instance.created_at),
            "answer_status": status,
            "abstain_reason": reason,
            "citations": meta.get("citations", []),
            "sources": meta.get("sources", []) if status != "abstained" else [],
            "degraded": bool(meta.get("degraded", False)),
            "latency_ms": meta.get("latency_ms"),
            "provider": meta.get("provider"),
            "model": meta.get("model"),
            "usage": meta.get("usage"),
            "feedback": feedback,
        }


class SendInputSerializer(serializers.Serializer[Any]):
    content = StrictCharField(max_length=MAX_MESSAGE_CHARS, trim_whitespace=True)


class SendOutputSerializer(serializers.Serializer[Any]):
    user_message = MessageSerializer()
    bot_message = MessageSerializer()


class MessageListQuerySerializer(serializers.Serializer[Any]):
    after = QueryIntegerField(min_value=0, required=False, help_text="Only messages with a greater id.")
    before = QueryIntegerField(min_value=0, required=False, help_text="Only messages with a smaller id.")
    page_size = QueryIntegerField(min_value=1, required=False, help_text="Default 50; above 100 counts as 100.")


class MessagePageSerializer(serializers.Serializer[Any]):
    """A page of a session's messages (cursor links in ``next`` and ``previous``)."""

    count = serializers.IntegerField(help_text="Messages in the session.")
    next = serializers.URLField(allow_null=True, help_text="Newer messages.")
    previous = serializers.URLField(allow_null=True, help_text="Older messages.")
    results = MessageSerializer(many=True)


class HistorySerializer(serializers.Serializer[Any]):
    sessions = SessionSerializer(many=True)
    recent_messages = MessageSerializer(many=True)
    total_sessions = serializers.IntegerField()
    total_messages = serializers.IntegerField()
