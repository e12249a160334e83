"""JWT authentication that also honours revocation: an access token dies with the user's token generation.

simplejwt checks signature, expiry and issuer and loads the user; on top of that a token whose
``gen`` claim is not the user's current ``User.token_generation`` is refused. Logout everywhere, a password
change and a password reset bump the generation, so access tokens issued before stop working at
once instead of living out their 15 minutes. The user row is loaded on every request anyway, so
the check costs no query and is never stale. A token without the claim (issued before this
check existed) counts as generation 0.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.tokens import Token

from users.tokens import TOKEN_GENERATION_CLAIM


class JWTAuthentication(authentication.JWTAuthentication):
    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        issued = validated_token.get(TOKEN_GENERATION_CLAIM, 0)
        if issued != getattr(user, "token_generation", 0):
            raise AuthenticationFailed("This token has been revoked.", code="token_revoked")
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI bearer scheme, as for simplejwt's own class."""

    target_class = "users.authentication.JWTAuthentication"
