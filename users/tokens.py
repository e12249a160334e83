"""Refresh tokens that know their family, for one-time rotation with reuse detection.

A login starts a *family*: its first refresh token's ``jti``, carried as the ``fam`` claim by that
token and by every token rotated from it. Rotation claims the presented token exactly once (see
``users.services.refresh_token_rotate``); presenting a token already rotated means two parties
hold the family, so the whole family is revoked (OAuth 2.0 Security BCP, refresh token reuse).
Tokens issued before families existed have no ``fam`` claim: their own ``jti`` is their family.
"""

from __future__ import annotations

from typing import Any

from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import BlacklistMixin, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

FAMILY_CLAIM = "fam"
TOKEN_GENERATION_CLAIM = "gen"  # noqa: S105 (a claim name: the user's token_generation at issue)


class FamilyRefreshToken(RefreshToken):
    # The access token needs no family: it is never rotated.
    no_copy_claims = (*RefreshToken.no_copy_claims, FAMILY_CLAIM)  # type: ignore[assignment]

    @classmethod
    def issue(cls, user: Any, *, family: str = "") -> FamilyRefreshToken:
        """A new refresh token of ``family`` (a new family when empty), recorded as outstanding."""
        # Token.for_user (past the blacklist mixin, which would record the token before its family is set).
        token: FamilyRefreshToken = super(BlacklistMixin, cls).for_user(user)
        token[FAMILY_CLAIM] = family or token[api_settings.JTI_CLAIM]
        # Copied into every access token made from it; users.authentication checks it.
        token[TOKEN_GENERATION_CLAIM] = getattr(user, "token_generation", 0)
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token=str(token),
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token

    @classmethod
    def for_user(cls, user: Any) -> FamilyRefreshToken:
        return cls.issue(user)

    @property
    def family(self) -> str:
        return str(self.get(FAMILY_CLAIM) or self[api_settings.JTI_CLAIM])


class PresentedRefreshToken(FamilyRefreshToken):
    """A refresh token sent for rotation: signature, expiry, issuer and type are verified, but not
    the blacklist, because rotation claims the token atomically instead and must tell a token
    presented again (reuse) from one that is invalid."""

    def check_blacklist(self) -> None:
        return None
