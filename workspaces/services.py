"""Workspace writes: creating (a user's personal one on demand), renaming and erasing workspaces,
their members' roles, invitations by email."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from rag.models import Document
from users import outbox
from users.models import User
from utils.exceptions import Conflict, NotFound, PermissionDeniedError, ValidationFailed
from workspaces.emails import InvitationMail, send_invitation_email
from workspaces.models import ApiKey, Invitation, Membership, Workspace

logger = logging.getLogger(__name__)


def _slug_for(name: str) -> str:
    base = slugify(name)[:48].strip("-") or "workspace"
    return f"{base}-{secrets.token_hex(4)}"


def plan_limits(plan: str) -> dict[str, int]:
    """The quotas a new workspace on ``plan`` starts with (``settings.WORKSPACE_PLANS``)."""
    return dict(settings.WORKSPACE_PLANS[plan])


@transaction.atomic
def workspace_create(*, name: str, owner: User, plan: str = Workspace.Plan.FREE) -> Workspace:
    workspace = Workspace.objects.create(name=name.strip(), slug=_slug_for(name), plan=plan, **plan_limits(plan))
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace


def workspace_personal_get(*, user: User) -> Workspace:
    """The user's personal workspace, made on first use (registration makes it; older accounts and
    accounts made outside the API get it here). Concurrent first uses agree on one."""
    try:
        return Workspace.objects.get(personal_owner=user)
    except Workspace.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            name = f"{user.username}'s workspace"
            workspace = Workspace.objects.create(
                name=name, slug=_slug_for(user.username), personal_owner=user, **plan_limits(Workspace.Plan.FREE)
            )
            Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
            return workspace
    except IntegrityError:
        return Workspace.objects.get(personal_owner=user)


# --- workspaces ---------------------------------------------------------------------------------


def _locked(workspace: Workspace) -> Workspace:
    """The workspace row, locked until the transaction ends: role changes, removals and leaving
    take turns, so two owners demoting or removing each other cannot leave none."""
    locked = Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
    if locked is None:  # deleted by a concurrent request
        raise NotFound("Workspace not found.")
    return locked


def _reread(*memberships: Membership) -> None:
    """Roles as they are now, under the lock (a request's copy may predate a concurrent change);
    a membership removed meanwhile is not found."""
    for membership in memberships:
        role = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
        if role is None:
            raise NotFound("Member not found.")
        membership.role = role


@transaction.atomic
def workspace_open(*, owner: User, name: str, include_shared: bool = True) -> Workspace:
    """A new workspace from the API, ``owner`` its first owner, within the cap on owned workspaces."""
    User.objects.select_for_update().filter(pk=owner.pk).first()  # one creation per user at a time: the cap holds
    owned = Membership.objects.filter(user=owner, role=Membership.Role.OWNER, workspace__personal_owner__isnull=True)
    if owned.count() >= settings.WORKSPACE_MAX_OWNED:
        raise Conflict(
            f"You already own {settings.WORKSPACE_MAX_OWNED} workspaces; delete one first.",
            code="too_many_workspaces",
        )
    workspace = workspace_create(name=name, owner=owner)
    if not include_shared:
        workspace.include_shared = False
        workspace.save(update_fields=["include_shared"])
    return workspace


def workspace_update(*, workspace: Workspace, name: str | None = None, include_shared: bool | None = None) -> Workspace:
    """Rename or switch the shared base on or off; the slug stays (it is the delete confirmation)."""
    fields: list[str] = []
    if name is not None:
        workspace.name = name.strip()
        fields.append("name")
    if include_shared is not None:
        workspace.include_shared = include_shared
        fields.append("include_shared")
    if fields:
        workspace.save(update_fields=fields)
    return workspace


def workspace_delete_check(*, membership: Membership) -> None:
    """Whether the caller of ``membership`` may delete its workspace: owners only, never a personal one."""
    if membership.role != Membership.Role.OWNER:
        raise PermissionDeniedError("Only an owner can delete the workspace.")
    if membership.workspace.is_personal:
        raise _personal_alone()


def _personal_alone() -> Conflict:
    return Conflict("A personal workspace is deleted with its account, not alone.", code="personal_workspace")


def workspace_delete(*, workspace: Workspace, allow_personal: bool = False) -> dict[str, int]:
    """Erase ``workspace`` and everything it owns; what was removed, by kind.

    Documents go first with their vectors (``documents_delete`` works in batches and can be run
    again if the store fails), then in one transaction the sessions with their messages, the
    memberships, invitations, API keys and the workspace row. A personal workspace goes with its
    account (``allow_personal``), never alone."""
    if workspace.is_personal and not allow_personal:
        raise _personal_alone()
    # Imported here: chat and the ingestion services sit above this module (they import it).
    from chat.history import history_changed
    from chat.models import ChatMessage, ChatSession
    from rag.services.ingestion import documents_delete

    erased = documents_delete(documents=Document.objects.filter(workspace=workspace))
    with transaction.atomic():
        _locked(workspace)
        # A document added while the first pass ran: the cascade below would drop its rows and
        # leave its vectors behind.
        late = documents_delete(documents=Document.objects.filter(workspace=workspace))
        sessions = ChatSession.objects.filter(workspace=workspace)
        users = set(sessions.values_list("user_id", flat=True))
        _, by_model = sessions.delete()
        counts = {
            "documents": erased.documents + late.documents,
            "chunks": erased.chunks + late.chunks,
            "vectors": erased.vectors + late.vectors,
            "sessions": by_model.get(ChatSession._meta.label, 0),
            "messages": by_model.get(ChatMessage._meta.label, 0),
            "members": Membership.objects.filter(workspace=workspace).delete()[0],
            "invitations": Invitation.objects.filter(workspace=workspace).delete()[0],
            "api_keys": ApiKey.objects.filter(workspace=workspace).delete()[0],
        }
        # Their cached chat history must not list the sessions that are gone.
        for user_id in sorted(users):
            history_changed(user_id)
        workspace.delete()
    logger.info("Deleted workspace %s: %s", workspace.pk, counts)
    return counts


# --- members --------------------------------------------------------------------------------------


def _owners_besides(workspace: Workspace, user_id: int) -> bool:
    return Membership.objects.filter(workspace=workspace, role=Membership.Role.OWNER).exclude(user_id=user_id).exists()


def _require_owner_for(actor: Membership, target: Membership, role: str | None = None) -> None:
    if not actor.can_manage:
        raise PermissionDeniedError("Only the workspace's owners and admins can manage members.")
    touches_owner = target.role == Membership.Role.OWNER or role == Membership.Role.OWNER
    if touches_owner and actor.role != Membership.Role.OWNER:
        raise PermissionDeniedError("Only an owner can grant, take or change the owner role.")


def _last_owner() -> Conflict:
    return Conflict(
        "The workspace's last owner cannot leave or be demoted; make another member owner first.", code="last_owner"
    )


@transaction.atomic
def member_role_change(*, actor: Membership, target: Membership, role: str) -> Membership:
    """Change ``target``'s role; ``actor`` is the caller's membership of the same workspace."""
    _locked(target.workspace)
    _reread(actor, target)
    _require_owner_for(actor, target, role)
    if (
        target.role == Membership.Role.OWNER
        and role != target.role
        and not _owners_besides(target.workspace, target.user_id)
    ):
        raise _last_owner()
    if role != target.role:
        target.role = role
        target.save(update_fields=["role"])
    return target


def _membership_end(membership: Membership) -> None:
    """Remove a member with the API keys they made there: a key acts as its creator and dies
    with their membership."""
    ApiKey.objects.filter(workspace=membership.workspace, created_by_id=membership.user_id).delete()
    membership.delete()


@transaction.atomic
def member_remove(*, actor: Membership, target: Membership) -> None:
    """``actor`` (owner or admin) removes ``target``; removing oneself is leaving."""
    if actor.pk == target.pk:
        return membership_leave(membership=target)
    _locked(target.workspace)
    _reread(actor, target)
    _require_owner_for(actor, target)
    _membership_end(target)


@transaction.atomic
def membership_leave(*, membership: Membership) -> None:
    """Leave a workspace; its last owner cannot (a personal workspace's owner never can)."""
    _locked(membership.workspace)
    _reread(membership)
    if membership.role == Membership.Role.OWNER and not _owners_besides(membership.workspace, membership.user_id):
        raise _last_owner()
    _membership_end(membership)


# --- invitations ------------------------------------------------------------------------------


def _token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


INVALID_INVITATION = "This invitation is invalid, expired, already used or meant for another address."


@transaction.atomic
def invitation_create(*, actor: Membership, email: str, role: str) -> Invitation:
    """Invite ``email`` to ``actor``'s workspace and mail the single-use token (only its hash is
    stored). A newer invitation of the same address replaces a pending older one."""
    workspace = actor.workspace
    if not actor.can_manage:
        raise PermissionDeniedError("Only the workspace's owners and admins can invite.")
    if role == Membership.Role.OWNER and actor.role != Membership.Role.OWNER:
        raise PermissionDeniedError("Only an owner can invite an owner.")
    if workspace.is_personal:
        raise Conflict(
            "A personal workspace has only its owner; create a workspace to invite people.", code="personal_workspace"
        )
    email = email.strip().lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise Conflict("This address belongs to a member already.", code="already_member")
    # Addresses are stored lower-cased, so the exact match uses the (workspace, email) index.
    Invitation.objects.filter(workspace=workspace, email=email, accepted_at__isnull=True).delete()
    raw, now = secrets.token_urlsafe(32), timezone.now()
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=_token_hash(raw),
        invited_by=actor.user,
        created_at=now,
        expires_at=now + timedelta(hours=settings.WORKSPACE_INVITATION_TTL_HOURS),
    )
    mail = InvitationMail(email=email, workspace=workspace.name, inviter=actor.user.get_username(), role=role)
    transaction.on_commit(lambda: outbox.submit(send_invitation_email, mail, raw))
    return invitation


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.delete()


@transaction.atomic
def invitation_accept(*, user: User, raw_token: str) -> Membership:
    """``user`` joins with the invitation's role. Unknown, used, expired, or another address's
    invitation: one and the same 400, so the answer reveals nothing about the token."""
    if not user.is_verified:
        raise PermissionDeniedError(
            "Verify your email address before accepting an invitation.", code="email_not_verified"
        )
    now = timezone.now()
    invitation = (
        Invitation.objects.select_related("workspace")
        .filter(token_hash=_token_hash(raw_token), accepted_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if invitation is None or invitation.email.lower() != user.email.lower() or invitation.workspace.is_personal:
        raise ValidationFailed(INVALID_INVITATION, code="invalid_invitation", errors={"token": [INVALID_INVITATION]})
    if Membership.objects.filter(workspace=invitation.workspace, user=user).exists():
        raise Conflict("You are a member of this workspace already.", code="already_member")
    # The conditional update makes a second use (even a concurrent one) find nothing to accept.
    if not Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        accepted_at=now, accepted_by=user
    ):
        raise ValidationFailed(INVALID_INVITATION, code="invalid_invitation", errors={"token": [INVALID_INVITATION]})
    try:
        with transaction.atomic():
            return Membership.objects.create(workspace=invitation.workspace, user=user, role=invitation.role)
    except IntegrityError as exc:
        raise Conflict("You are a member of this workspace already.", code="already_member") from exc
