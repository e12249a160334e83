"""API keys of a workspace (DESIGN §8): made, listed and revoked by its owners and admins, and
checked on every request that presents one.

A key reads ``rk_<prefix>_<secret>``. The prefix finds the row and names the key in lists; only
the SHA-256 of the whole key is stored, so the database alone cannot be used to call the API. A
key is shown once, in the reply that creates it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from users.models import User
from utils.exceptions import Conflict, NotFound, ValidationFailed
from workspaces.models import ApiKey, Membership, Workspace

KEY_PREFIX = "rk"
PREFIX_LENGTH = 8
# Letters and digits only: the prefix sits between two underscores, and the secret
# (token_urlsafe) may itself contain underscores, so the key is split on the first two only.
_PREFIX_ALPHABET = string.ascii_letters + string.digits
# last_used_at is a hint for humans; writing it on every request would put a busy key's
# traffic on one row. It is written at most once per this interval.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_prefix_of(raw_key: str) -> str | None:
    """The lookup prefix of a well-formed key, else ``None``."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        return None
    if any(ch not in _PREFIX_ALPHABET for ch in parts[1]):
        return None
    return parts[1]


def _new_key() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


def _live(now: datetime) -> Q:
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


# --- selectors ----------------------------------------------------------------------------------


def api_keys_of(*, workspace: Workspace) -> QuerySet[ApiKey]:
    """Every key of ``workspace`` (revoked and expired ones too), newest first. The caller has
    checked that the requesting user manages the workspace (``membership_require(manage=True)``)."""
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by").order_by("-created_at", "-id")


def api_key_get(*, workspace: Workspace, key_id: int) -> ApiKey:
    """One key of ``workspace``; a key of another workspace is not found."""
    api_key = api_keys_of(workspace=workspace).filter(pk=key_id).first()
    if api_key is None:
        raise NotFound("API key not found.")
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The key ``raw_key`` names if it may be used now, else ``None``.

    Usable means: known, hash equal, not revoked, not expired, its creator active and still an
    owner or admin of its workspace. All of it is read from the database on every call (one
    query), so a revocation or a lost role takes effect on the very next request."""
    prefix = key_prefix_of(raw_key)
    if prefix is None:
        return None
    now = timezone.now()
    manages = Membership.objects.filter(
        workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id"), role__in=MANAGER_ROLES
    )
    api_key = (
        ApiKey.objects.select_related("created_by", "workspace")
        .annotate(creator_manages=Exists(manages))
        .filter(prefix=prefix)
        .first()
    )
    # The digest comparison runs whether or not the prefix matched a row, so the time taken
    # does not tell a known prefix from an unknown one.
    expected = api_key.key_hash if api_key is not None else "0" * 64
    if not hmac.compare_digest(expected, key_hash(raw_key)) or api_key is None:
        return None
    if api_key.revoked_at is not None or (api_key.expires_at is not None and api_key.expires_at <= now):
        return None
    if not api_key.created_by.is_active or not api_key.creator_manages:
        return None
    _touch(api_key, now)
    return api_key


def _touch(api_key: ApiKey, now: datetime) -> None:
    """Record use at most once per ``LAST_USED_RESOLUTION``; the condition is in the UPDATE, so
    concurrent requests of one key write once between them."""
    stale = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > stale:
        return
    ApiKey.objects.filter(pk=api_key.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)).update(
        last_used_at=now
    )
    api_key.last_used_at = now


# --- services -----------------------------------------------------------------------------------


def api_key_create(
    *, workspace: Workspace, created_by: User, name: str, scopes: list[str], expires_at: datetime | None = None
) -> CreatedKey:
    """Make a key acting as ``created_by`` (an owner or admin of ``workspace``, checked by the
    caller) inside ``workspace`` with ``scopes``. The raw key is returned once and never stored."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise ValidationFailed("Choose at least one known scope.", errors={"scopes": ["Unknown or no scopes."]})
    ordered = [scope for scope in ApiKey.Scope.values if scope in scopes]
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("The expiry must be in the future.", errors={"expires_at": ["Must be in the future."]})
    for _ in range(3):  # a prefix collision (about one in 10^14 per pair) is simply retried
        prefix, raw_key = _new_key()
        try:
            with transaction.atomic():
                _limit_live_keys(workspace, now)
                api_key = ApiKey.objects.create(
                    workspace=workspace,
                    created_by=created_by,
                    name=name.strip(),
                    prefix=prefix,
                    key_hash=key_hash(raw_key),
                    scopes=ordered,
                    created_at=now,
                    expires_at=expires_at,
                )
            return CreatedKey(api_key=api_key, raw_key=raw_key)
        except IntegrityError:
            continue
    raise Conflict("Could not make a unique key; try again.")


def _limit_live_keys(workspace: Workspace, now: datetime) -> None:
    # The workspace row is locked so that concurrent creations count each other (PostgreSQL; on
    # SQLite writers are serialised anyway).
    Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
    limit = settings.API_KEYS_MAX_PER_WORKSPACE
    if ApiKey.objects.filter(_live(now), workspace=workspace).count() >= limit:
        raise Conflict(
            f"A workspace may have at most {limit} live API keys; revoke one first.", code="api_key_limit_reached"
        )


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke ``api_key`` from the next request on. Revoking a revoked key changes nothing."""
    if api_key.revoked_at is None:
        now = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
        api_key.refresh_from_db(fields=["revoked_at"])
    return api_key
