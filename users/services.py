"""Account workflows: registration, verification, login, tokens and passwords."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from users import outbox
from users.emails import send_password_reset_email, send_verification_email
from users.lockout import login_failure_record, login_locked_for
from users.models import AccountToken, RevokedTokenFamily, User
from users.tokens import FAMILY_CLAIM, FamilyRefreshToken, PresentedRefreshToken
from utils.batches import BATCH_SIZE, delete_in_batches
from utils.exceptions import AuthenticationFailed, PermissionDeniedError, Throttled, ValidationFailed
from workspaces.services import workspace_personal_get

logger = logging.getLogger(__name__)

INVALID_TOKEN = "This link or token is invalid, expired or already used."  # noqa: S105 (a message)
ALREADY_VERIFIED = "This email address is already verified; you can log in."


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def _hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def password_validate(*, password: str, user: User, field: str = "password") -> None:
    """Django's password validators, reported as a 400 on ``field``."""
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid input.", code="invalid", errors={field: list(exc.messages)}) from exc


def account_token_issue(*, user: User, purpose: str) -> str:
    """Create a single-use token, retiring earlier unused ones; return the raw value (only its hash is stored)."""
    hours = (
        settings.EMAIL_VERIFICATION_TTL_HOURS
        if purpose == AccountToken.Purpose.VERIFY_EMAIL
        else settings.PASSWORD_RESET_TTL_HOURS
    )
    raw = secrets.token_urlsafe(32)
    # Only the newest link works: an older email that leaked cannot be used any more.
    AccountToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(used_at=timezone.now())
    AccountToken.objects.create(
        user=user, purpose=purpose, token_hash=_hash(raw), expires_at=timezone.now() + timedelta(hours=hours)
    )
    return raw


def account_token_consume(*, raw_token: str, purpose: str) -> User:
    """Mark a token used and return its user; the conditional update makes reuse impossible."""
    now = timezone.now()
    token = (
        AccountToken.objects.select_related("user")
        .filter(token_hash=_hash(raw_token), purpose=purpose, used_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if token is None or not AccountToken.objects.filter(pk=token.pk, used_at__isnull=True).update(used_at=now):
        raise ValidationFailed(INVALID_TOKEN, code="invalid_token", errors={"token": [INVALID_TOKEN]})
    return token.user


def _account_tokens_retire(*, user: User, purpose: str) -> None:
    AccountToken.objects.filter(user=user, purpose=purpose, used_at__isnull=True).update(used_at=timezone.now())


def _registration_conflict(*, username: str, email: str) -> ValidationFailed:
    """The 400 for a name or address taken by a registration that committed after ours was validated."""
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["This username is already taken."]
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = ["An account with this email already exists."]
    return ValidationFailed("Invalid input.", code="invalid", errors=errors or {"username": ["Already taken."]})


@transaction.atomic
def user_register(*, username: str, email: str, password: str, first_name: str = "", last_name: str = "") -> User:
    user = User(username=username, email=email.strip().lower(), first_name=first_name, last_name=last_name)
    password_validate(password=password, user=user)
    user.set_password(password)
    try:
        with transaction.atomic():  # a savepoint: the unique constraints decide a concurrent registration
            user.save()
    except IntegrityError as exc:
        raise _registration_conflict(username=username, email=user.email) from exc
    workspace_personal_get(user=user)
    raw = account_token_issue(user=user, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    transaction.on_commit(lambda: outbox.submit(send_verification_email, user, raw))
    return user


@transaction.atomic
def email_verify(*, raw_token: str) -> User:
    """Verify with a live token. A used, retired or expired one of an account that is verified by
    now (a mail preview opened the link first) is refused with ``already_verified``, which says so."""
    try:
        user = account_token_consume(raw_token=raw_token, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    except ValidationFailed:
        if AccountToken.objects.filter(
            token_hash=_hash(raw_token), purpose=AccountToken.Purpose.VERIFY_EMAIL, user__is_verified=True
        ).exists():
            raise ValidationFailed(
                ALREADY_VERIFIED, code="already_verified", errors={"token": [ALREADY_VERIFIED]}
            ) from None
        raise
    if not user.is_verified:
        user.is_verified = True
        user.save(update_fields=["is_verified"])
    return user


@transaction.atomic
def verification_resend(*, email: str) -> None:
    """Mail a fresh link to an unverified active account; silent otherwise (no enumeration)."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True, is_verified=False).first()
    if user is None:
        return
    raw = account_token_issue(user=user, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    transaction.on_commit(lambda: outbox.submit(send_verification_email, user, raw))


def tokens_for(user: User) -> TokenPair:
    """A new pair, starting a new refresh-token family (with the user's token generation)."""
    refresh = FamilyRefreshToken.issue(user)
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def token_generation_bump(*, user: User) -> None:
    """Every token issued to ``user`` before now stops working, access tokens included."""
    User.objects.filter(pk=user.pk).update(token_generation=F("token_generation") + 1)
    user.refresh_from_db(fields=["token_generation"])


def refresh_token_rotate(*, refresh: str) -> TokenPair:
    """Exchange a refresh token for a new pair, once; a token presented again revokes its family.

    The presented token is claimed by inserting its blacklist row (unique per token) in the
    transaction that issues its successor: of parallel rotations exactly one inserts it, on
    PostgreSQL (the others wait for its commit, then collide) and on SQLite (writers serialised).
    A token already claimed (rotated, logged out or revoked) is refused, and since two parties then
    hold the family, every token of the family is revoked: the thief's and the victim's alike.

    Raises ``TokenError`` for an invalid, expired, reused or revoked token and
    ``AuthenticationFailed`` (``no_active_account``) when its user is gone or deactivated.
    """
    presented = PresentedRefreshToken(refresh)  # type: ignore[arg-type]  # simplejwt types it as a Token
    user = User.objects.filter(pk=presented.get(jwt_settings.USER_ID_CLAIM)).first()
    if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
        raise AuthenticationFailed("No active account found for the given token.", code="no_active_account")
    family = presented.family
    reused = revoked = False
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=presented[jwt_settings.JTI_CLAIM],
            defaults={"user": user, "token": refresh, "expires_at": datetime_from_epoch(presented["exp"])},
        )
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError:
            reused = True
        else:
            revoked = RevokedTokenFamily.objects.filter(family=family).exists()
            if not revoked:
                successor = FamilyRefreshToken.issue(user, family=family)
    if reused:
        revoked_count = token_family_revoke(family=family, user=user)
        logger.warning(
            "Refresh token reuse: family %s of user %s revoked (%d live token(s))", family, user.pk, revoked_count
        )
    if reused or revoked:
        raise TokenError("Token is blacklisted")
    return TokenPair(access=str(successor.access_token), refresh=str(successor))


def _family_of(encoded: str) -> str:
    """The family of a token we issued and stored (already verified then, so not verified again)."""
    try:
        payload = jwt.decode(encoded, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return ""
    return str(payload.get(FAMILY_CLAIM) or payload.get(jwt_settings.JTI_CLAIM) or "")


@transaction.atomic
def token_family_revoke(*, family: str, user: User) -> int:
    """End a refresh-token family: none of its tokens refreshes again, including one being issued
    right now (checked at every rotation). Returns how many live tokens were blacklisted."""
    RevokedTokenFamily.objects.get_or_create(family=family, defaults={"user": user})
    live = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True, expires_at__gt=timezone.now())
    members = [token for token in live.only("pk", "token") if _family_of(token.token) == family]
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in members], ignore_conflicts=True)
    return len(members)


def user_login(*, identifier: str, password: str, request: HttpRequest | None) -> tuple[User, TokenPair]:
    """Check the credentials and issue a pair. A failure is counted against the client and the
    account (``users.lockout``); a locked client or account is refused before any password check."""
    if request is not None and (wait := login_locked_for(request=request, identifier=identifier)):
        raise Throttled(
            "Too many failed logins from this address or for this account; try again later.",
            code="login_locked",
            retry_after=wait,
        )
    user = authenticate(request, username=identifier.strip(), password=password)
    if not isinstance(user, User):
        if request is not None:
            login_failure_record(request=request, identifier=identifier)
        raise AuthenticationFailed("No active account found with these credentials.")
    if settings.REQUIRE_EMAIL_VERIFICATION and not user.is_verified:
        raise PermissionDeniedError(
            "Verify your email address before logging in; you can ask for a new link.", code="email_not_verified"
        )
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    return user, tokens_for(user)


def refresh_token_revoke(*, user: User, refresh: str) -> None:
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]
    except TokenError as exc:
        raise ValidationFailed(str(exc), code="invalid_token", errors={"refresh": [str(exc)]}) from exc
    if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(user.pk):
        raise ValidationFailed("This refresh token belongs to another user.", code="invalid_token")
    token.blacklist()


def refresh_tokens_revoke_all(*, user: User) -> int:
    """Blacklist every refresh token the user holds; returns how many were newly revoked."""
    outstanding = OutstandingToken.objects.filter(
        user=user, blacklistedtoken__isnull=True, expires_at__gt=timezone.now()
    )
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    token_generation_bump(user=user)  # the access tokens issued so far, too
    return len(revoked)


@transaction.atomic
def password_change(*, user: User, old_password: str, new_password: str) -> TokenPair:
    """Change the password, revoke every refresh token, and hand this client a fresh pair."""
    if not user.check_password(old_password):
        message = "The current password is not correct."
        raise ValidationFailed(message, code="wrong_password", errors={"old_password": [message]})
    password_validate(password=new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    # A reset link mailed before the change must not undo it.
    _account_tokens_retire(user=user, purpose=AccountToken.Purpose.RESET_PASSWORD)
    refresh_tokens_revoke_all(user=user)
    return tokens_for(user)


@transaction.atomic
def password_reset_request(*, email: str) -> None:
    """Mail a reset token to an active account; identical outcome when none exists."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        return
    raw = account_token_issue(user=user, purpose=AccountToken.Purpose.RESET_PASSWORD)
    transaction.on_commit(lambda: outbox.submit(send_password_reset_email, user, raw))


@transaction.atomic
def password_reset_confirm(*, raw_token: str, new_password: str) -> User:
    """Set the new password; the mailbox was proven, so the email counts as verified too."""
    user = account_token_consume(raw_token=raw_token, purpose=AccountToken.Purpose.RESET_PASSWORD)
    password_validate(password=new_password, user=user, field="new_password")  # failure rolls back the consume
    user.set_password(new_password)
    user.is_verified = True
    user.save(update_fields=["password", "is_verified"])
    _account_tokens_retire(user=user, purpose=AccountToken.Purpose.RESET_PASSWORD)
    refresh_tokens_revoke_all(user=user)
    return user


def user_profile_update(*, user: User, first_name: str | None = None, last_name: str | None = None) -> User:
    fields = []
    if first_name is not None:
        user.first_name = first_name
        fields.append("first_name")
    if last_name is not None:
        user.last_name = last_name
        fields.append("last_name")
    if fields:
        user.save(update_fields=fields)
    return user


def expired_tokens_delete(
    *, dry_run: bool = False, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, int]:
    """Token cleanup: delete (or, dry, count) expired or used account tokens and expired JWT
    bookkeeping rows (outstanding tokens and their blacklist entries). Valid tokens are never touched."""
    now = now or timezone.now()
    targets: dict[str, QuerySet[Model]] = {
        "account_tokens_deleted": AccountToken.objects.filter(Q(expires_at__lte=now) | Q(used_at__isnull=False)),
        # Blacklist entries first: deleting an outstanding token would cascade to its entry uncounted.
        "blacklisted_tokens_deleted": BlacklistedToken.objects.filter(token__expires_at__lte=now),
        "outstanding_tokens_deleted": OutstandingToken.objects.filter(expires_at__lte=now),
    }
    if dry_run:
        return {name: queryset.count() for name, queryset in targets.items()}
    return {name: delete_in_batches(queryset, batch_size) for name, queryset in targets.items()}
