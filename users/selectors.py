"""Reads about accounts: the signed-in user, and everything the account owns (its export)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone
from rest_framework.request import Request

from chat.models import ChatMessage, ChatSession
from rag.models import Document
from users.models import User
from workspaces.models import ApiKey, Invitation, Membership, Workspace

EXPORT_FORMAT_VERSION = 1


def request_user(request: Request) -> User:
    """The signed-in user of a view guarded by ``IsAuthenticated``."""
    assert isinstance(request.user, User)
    return request.user


def workspaces_owned_alone(*, user: User) -> list[int]:
    """Ids of the user's personal workspace and of the workspaces where they are the only member:
    whose documents are theirs (a shared workspace's documents belong to its members together)."""
    mine = Membership.objects.filter(user=user).values("workspace_id")
    alone = (
        Workspace.objects.filter(pk__in=mine)
        .annotate(members=Count("memberships"))
        .filter(Q(members=1) | Q(personal_owner=user))
    )
    return sorted(set(alone.values_list("pk", flat=True)) | set(user_personal_workspace_ids(user=user)))


def user_personal_workspace_ids(*, user: User) -> list[int]:
    return list(Workspace.objects.filter(personal_owner=user).values_list("pk", flat=True))


def _profile(user: User) -> dict[str, Any]:
    fields = ["id", "username", "email", "first_name", "last_name", "date_joined", "last_login", "is_verified"]
    return {name: getattr(user, name) for name in fields}


def _memberships(user: User) -> list[dict[str, Any]]:
    rows = Membership.objects.filter(user=user).select_related("workspace").order_by("workspace_id")
    return [
        {
            "workspace_id": m.workspace_id,
            "workspace_name": m.workspace.name,
            "personal": m.workspace.personal_owner_id == user.pk,
            "role": m.role,
            "joined_at": m.created_at,
        }
        for m in rows
    ]


def _message(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.pk,
        "sender": message.sender,
        "content": message.content,
        "created_at": message.created_at,
        # Answers: answer_status, abstain_reason, citations, sources, provider, model, usage, latency.
        "metadata": message.metadata,
        "feedback_rating": message.feedback_rating,
        "feedback_comment": message.feedback_comment,
        "feedback_at": message.feedback_at,
    }


def _sessions(user: User) -> list[dict[str, Any]]:
    """The user's own sessions only: another member's messages in a shared workspace are theirs."""
    sessions = list(ChatSession.objects.filter(user=user).order_by("created_at", "id"))
    messages: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = ChatMessage.objects.filter(session__user=user).order_by("session_id", "created_at", "id")
    for message in rows.iterator(chunk_size=2000):
        messages[message.session_id].append(_message(message))
    return [
        {
            "id": s.pk,
            "title": s.title,
            "workspace_id": s.workspace_id,
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "messages": messages.get(s.pk, []),
        }
        for s in sessions
    ]


def _documents(user: User) -> list[dict[str, Any]]:
    fields = ["id", "workspace_id", "title", "source", "category", "content", "created_at", "updated_at"]
    rows = Document.objects.filter(workspace_id__in=workspaces_owned_alone(user=user)).order_by("workspace_id", "id")
    return list(rows.values(*fields).iterator(chunk_size=500))


def _api_keys(user: User) -> list[dict[str, Any]]:
    """What identifies each key, never its hash."""
    fields = ["workspace_id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at"]
    return list(ApiKey.objects.filter(created_by=user).order_by("created_at", "id").values(*fields))


def _invitations(user: User) -> list[dict[str, Any]]:
    fields = ["workspace_id", "email", "role", "created_at", "expires_at", "accepted_at"]
    return list(Invitation.objects.filter(invited_by=user).order_by("created_at", "id").values(*fields))


def account_export(*, user: User) -> dict[str, Any]:
    """All of the user's data (``GET /api/auth/me/export/``), and nothing of anyone else's."""
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": timezone.now(),
        "profile": _profile(user),
        "memberships": _memberships(user),
        "sessions": _sessions(user),
        "documents": _documents(user),
        "api_keys": _api_keys(user),
        "invitations_sent": _invitations(user),
    }
