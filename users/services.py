"""Account workflows: registration, verification, login, tokens and passwords."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from users.emails import send_password_reset_email, send_verification_email
from users.models import AccountToken, User
from utils.exceptions import AuthenticationFailed, PermissionDeniedError, ValidationFailed

TOKEN_GENERATION_CLAIM = "gen"  # noqa: S105 (a claim name: the token_generation at issue)
INVALID_TOKEN = "This link or token is invalid, expired or already used."  # noqa: S105 (a message)


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
    raw = account_token_issue(user=user, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    transaction.on_commit(lambda: send_verification_email(user, raw))
    return user


@transaction.atomic
def email_verify(*, raw_token: str) -> User:
    user = account_token_consume(raw_token=raw_token, purpose=AccountToken.Purpose.VERIFY_EMAIL)
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
    transaction.on_commit(lambda: send_verification_email(user, raw))


def tokens_for(user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)
    # Copied into every access token made from this refresh token (users.authentication checks it).
    refresh[TOKEN_GENERATION_CLAIM] = user.token_generation
    # for_user recorded the token before the claim was added: record the token as handed out.
    OutstandingToken.objects.filter(jti=refresh[jwt_settings.JTI_CLAIM]).update(token=str(refresh))
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def token_generation_bump(*, user: User) -> None:
    """Every token issued to ``user`` before now stops working, access tokens included."""
    User.objects.filter(pk=user.pk).update(token_generation=F("token_generation") + 1)
    user.refresh_from_db(fields=["token_generation"])


def user_login(*, identifier: str, password: str, request: HttpRequest | None) -> tuple[User, TokenPair]:
    user = authenticate(request, username=identifier.strip(), password=password)
    if not isinstance(user, User):
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
    transaction.on_commit(lambda: send_password_reset_email(user, raw))


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
