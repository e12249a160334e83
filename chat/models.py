"""Chat sessions and their messages, feedback on answers, and idempotency records."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ChatSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    # Chosen when the session is opened (default: the user's personal workspace); retrieval reads
    # that workspace's documents (and the shared base unless the workspace turned it off).
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="Last activity: creation, rename or message.")

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_session_user_activity")]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"


class ChatMessage(models.Model):
    class Sender(models.TextChoices):
        USER = "user", "User"
        BOT = "bot", "Bot"

    class Rating(models.IntegerChoices):
        UP = 1, "Helpful"
        DOWN = -1, "Not helpful"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=4, choices=Sender.choices)
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # Bot messages: sources, model, provider, usage, latency_ms, degraded.
    metadata = models.JSONField(default=dict, blank=True)
    feedback_rating = models.SmallIntegerField(choices=Rating.choices, null=True, blank=True)
    feedback_comment = models.TextField(blank=True, default="")
    feedback_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["session", "id"], name="chat_message_session_order"),
            models.Index(fields=["created_at"], name="chat_message_created"),
        ]

    def __str__(self) -> str:
        return f"{self.sender} #{self.pk} in session {self.session_id}"


class IdempotencyRecord(models.Model):
    """The first reply to a send with a given ``Idempotency-Key``, so a retry can replay it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="+")
    user_message = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="+")
    bot_message = models.ForeignKey(ChatMessage, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="chat_idempotency_user_key_unique")]

    def __str__(self) -> str:
        return f"Idempotency key of user {self.user_id}"


class HistoryVersion(models.Model):
    """A token that every write to the user's chats replaces, in the writing transaction: the key
    under which their cached ``/api/chat/history/`` is stored (see ``chat.history``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"History version of user {self.user_id}"


class DailyMessageCount(models.Model):
    """How many messages the user has sent on ``day`` (UTC): the daily quota's counter.

    One row per user, claimed with a conditional UPDATE in the transaction that stores the message,
    so parallel sends cannot overshoot the quota, and a check costs one primary-key update however
    many sessions and messages the user has. The first send of a new day starts it again at 1.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.count} message(s) of user {self.user_id} on {self.day}"


class WorkspaceDailyMessageCount(models.Model):
    """How many messages the workspace's members have sent on ``day`` (UTC): the workspace's daily
    quota (``Workspace.max_messages_per_day``), claimed like ``DailyMessageCount`` (see
    ``workspaces.quotas.workspace_message_claim``)."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.count} message(s) in workspace {self.workspace_id} on {self.day}"
