"""Admin: sessions and messages are searchable and read-only; feedback is visible."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from chat.history import history_changed_for_everyone
from chat.models import ChatMessage, ChatSession


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Content is read-only; deleting is allowed and refreshes everyone's cached history."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        history_changed_for_everyone()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        history_changed_for_everyone()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(admin.TabularInline[ChatMessage, ChatSession]):
    model = ChatMessage
    fields = ("sender", "content", "created_at", "feedback_rating", "feedback_comment")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "user", "created_at", "updated_at")
    search_fields = ("title", "user__username", "user__email", "messages__content")
    list_select_related = ("user",)
    date_hierarchy = "updated_at"
    inlines = [MessageInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "session", "sender", "short_content", "feedback_rating", "degraded", "created_at")
    list_filter = ("sender", "feedback_rating", "created_at")
    search_fields = ("content", "feedback_comment", "session__title", "session__user__username")
    list_select_related = ("session",)
    readonly_fields = (
        "session",
        "sender",
        "content",
        "created_at",
        "metadata",
        "feedback_rating",
        "feedback_comment",
        "feedback_at",
    )

    @admin.display(description="content")
    def short_content(self, obj: ChatMessage) -> str:
        return obj.content[:80]

    @admin.display(description="degraded", boolean=True)
    def degraded(self, obj: ChatMessage) -> bool:
        return bool((obj.metadata or {}).get("degraded"))
