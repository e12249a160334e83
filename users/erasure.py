"""Account erasure (DESIGN §8): ``DELETE /api/auth/me/`` removes every row and every vector the
account owns, in one operation whose result says what was removed.

What goes: the personal workspace and every workspace where the user is the only member (their
documents with their chunks and vectors, sessions, messages, invitations, keys), the user's
memberships and sessions elsewhere, the API keys they created, the invitations they accepted or
left pending, account and JWT bookkeeping rows, idempotency and quota counters, and the user row.
What stays: workspaces shared with other people, their documents and the other members' chats.
A user who is the last owner of a workspace with other members must hand it over first.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from users.lockout import login_failure_record, login_locked_for
from users.models import User
from utils.exceptions import Throttled, ValidationFailed
from workspaces.models import Invitation, Membership, Workspace
from workspaces.services import workspace_delete

logger = logging.getLogger(__name__)

WRONG_PASSWORD = "The password is not correct; the account was not erased."  # noqa: S105 (a message)

# The kinds the response reports, by the model whose rows they count (Django's delete() labels).
KINDS: dict[str, str] = {
    "workspaces.Workspace": "workspaces",
    "workspaces.Membership": "memberships",
    "workspaces.Invitation": "invitations",
    "workspaces.ApiKey": "api_keys",
    "chat.ChatSession": "sessions",
    "chat.ChatMessage": "messages",
    "chat.IdempotencyRecord": "idempotency_records",
    "chat.HistoryVersion": "history_versions",
    "chat.DailyMessageCount": "message_counters",
    "users.AccountToken": "account_tokens",
    "users.RevokedTokenFamily": "revoked_token_families",
    "token_blacklist.OutstandingToken": "refresh_tokens",
    "token_blacklist.BlacklistedToken": "blacklisted_tokens",
    "admin.LogEntry": "admin_log_entries",
    "users.User": "users",
}


class OwnershipTransferRequired(ValidationFailed):
    """409: the user is the last owner of workspaces that other members still use."""

    status_code = 409
    code = "transfer_ownership"


@dataclass(frozen=True)
class ErasurePlan:
    erase: list[Workspace]  # personal, or the user is the only member
    blocked: list[Workspace]  # the user is their last owner and other members remain


def erasure_plan(*, user: User) -> ErasurePlan:
    """Which of the user's workspaces go with the account, and which block the erasure: a few
    queries (counts aggregated per workspace), whatever the number of workspaces."""
    # Filtered by a subquery, not by ``memberships__user``: that join would make the counts count
    # the user's own membership only.
    mine = Membership.objects.filter(user=user).values("workspace_id")
    workspaces = Workspace.objects.filter(pk__in=mine).annotate(
        members=Count("memberships", distinct=True),
        owners=Count("memberships", filter=Q(memberships__role=Membership.Role.OWNER), distinct=True),
    )
    roles = dict(Membership.objects.filter(user=user).values_list("workspace_id", "role"))
    erase: list[Workspace] = []
    blocked: list[Workspace] = []
    for workspace in workspaces.order_by("id"):
        if workspace.personal_owner_id == user.pk or workspace.members == 1:
            erase.append(workspace)
        elif roles.get(workspace.pk) == Membership.Role.OWNER and workspace.owners == 1:
            blocked.append(workspace)
    # A personal workspace the user is somehow no longer a member of is still theirs to erase.
    personal = Workspace.objects.filter(personal_owner=user).exclude(pk__in=[w.pk for w in erase]).first()
    if personal is not None:
        erase.append(personal)
    return ErasurePlan(erase=erase, blocked=blocked)


def _counted(counts: dict[str, int]) -> Counter[str]:
    return Counter({KINDS.get(label, label): n for label, n in counts.items() if n})


def _workspaces_erase(*, workspaces: Iterable[Workspace]) -> Counter[str]:
    """Each workspace as ``DELETE /api/workspaces/{id}/`` erases it (documents with their chunks and
    vectors first, then sessions, messages, members, invitations, keys and the row)."""
    removed: Counter[str] = Counter()
    for workspace in workspaces:
        counts = workspace_delete(workspace=workspace, allow_personal=True)
        counts["memberships"] = counts.pop("members", 0)
        removed.update(workspaces=1, **counts)
    return removed


def _own_rows(user: User) -> list[QuerySet[Any]]:
    """The user's rows that outlive the user row unless deleted first: refresh tokens (their FK is
    SET NULL, yet each holds the user id in its token), and invitations carrying their address
    (accepted) or their authority (still pending)."""
    return [
        OutstandingToken.objects.filter(user=user),
        Invitation.objects.filter(Q(accepted_by=user) | Q(invited_by=user, accepted_at__isnull=True)),
    ]


def password_recheck(*, user: User, password: str, request: HttpRequest | None) -> None:
    """The password again before an irreversible act; failures count like failed logins."""
    if request is not None and (wait := login_locked_for(request=request, identifier=user.username)):
        raise Throttled("Too many wrong passwords; try again later.", code="login_locked", retry_after=wait)
    if not user.check_password(password):
        if request is not None:
            login_failure_record(request=request, identifier=user.username)
        raise ValidationFailed(WRONG_PASSWORD, code="wrong_password", errors={"password": [WRONG_PASSWORD]})


def account_erase(*, user: User, password: str, request: HttpRequest | None = None) -> dict[str, int]:
    """Erase the account and everything it owns; returns rows (and vectors) removed per kind.

    Wrong password: 400 ``wrong_password``. Last owner of a workspace with other members: 409
    ``transfer_ownership`` naming them, and nothing is erased.
    """
    password_recheck(user=user, password=password, request=request)
    plan = erasure_plan(user=user)
    if plan.blocked:
        names = [f"{w.name} (id {w.pk})" for w in plan.blocked]
        raise OwnershipTransferRequired(
            "You are the last owner of workspaces that have other members: make another member an owner, "
            f"or remove the members, before erasing your account: {', '.join(names)}.",
            errors={"workspaces": names},
        )
    # Vectors cannot join a database transaction, so each workspace's go first with its documents
    # (as documents_delete does): a failure leaves rows to erase again, never an orphan vector.
    removed = _workspaces_erase(workspaces=plan.erase)
    with transaction.atomic():
        for queryset in _own_rows(user):
            removed.update(_counted(queryset.delete()[1]))
        # The user row takes the rest with it: memberships, sessions in shared workspaces and their
        # messages, API keys, account tokens, counters, idempotency records, cached-history versions.
        removed.update(_counted(User.objects.filter(pk=user.pk).delete()[1]))
    result = {kind: removed.get(kind, 0) for kind in ("documents", "chunks", "vectors", *KINDS.values())}
    result.update(removed)  # rows of a model added later that cascades from the user, under its label
    logger.info("Account %s erased: %s", user.pk, {k: n for k, n in result.items() if n})
    return result
