"""OpenAPI documentation of the account endpoints: the arguments of each view's ``extend_schema`` and
the examples they show (``users.apis`` applies them as ``@schema.<view>_<method>``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)

from users.serializers import (
    AccountErasedSerializer,
    AccountEraseInputSerializer,
    DetailSerializer,
    EmailInputSerializer,
    LoginByEmailSerializer,
    LoginByUsernameSerializer,
    LoginOutputSerializer,
    PasswordChangeInputSerializer,
    PasswordChangeOutputSerializer,
    PasswordResetConfirmSerializer,
    ProfileUpdateSerializer,
    RefreshInputSerializer,
    RegisteredUserSerializer,
    RegisterInputSerializer,
    TokenInputSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from utils.schema import error_responses, request_example, response_example

TAG = ["auth"]


_USER_EXAMPLE = {
    "id": 7,
    "username": "ada",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "date_joined": "2026-11-21T09:30:00Z",
    "is_verified": True,
}


_TOKENS_EXAMPLE = {"access": "eyJhbGciOiJIUzI1NiIs...", "refresh": "eyJhbGciOiJIUzI1NiIs..."}


_NO_FORMAT_PARAMETER = OpenApiParameter("format", exclude=True)


_VERIFICATION_PAGE = OpenApiResponse(
    OpenApiTypes.STR, description="With `Accept: text/html` (a browser): a short page saying what happened."
)


# The same statuses in both representations: JSON for API clients, the page for browsers.
_VERIFICATION_RESPONSES: dict[Any, Any] = {
    (200, "application/json"): UserSerializer,
    **{(status, "application/json"): response for status, response in error_responses(400, 429).items()},
    **{(status, "text/html"): _VERIFICATION_PAGE for status in (200, 400, 429)},
}


ACCEPTED = response_example("Accepted", {"detail": "If an account matches, an email is on its way."}, 202)


register_post = extend_schema(
    tags=TAG,
    summary="Create an account",
    description="Creates an unverified account and mails a verification link.",
    request=RegisterInputSerializer,
    responses={201: RegisteredUserSerializer, **error_responses(400, 429)},
    examples=[
        request_example(
            "Register",
            {"username": "ada", "email": "ada@example.com", "password": "c0rrect-horse-battery"},
        ),
        response_example(
            "Created",
            {k: _USER_EXAMPLE[k] for k in ("id", "username", "email", "date_joined")} | {"is_verified": False},
            201,
        ),
    ],
)


verify_email_post = extend_schema(
    tags=TAG,
    summary="Verify an email address with the mailed token",
    request=TokenInputSerializer,
    responses={200: UserSerializer, **error_responses(400, 429)},
    examples=[request_example("Token", {"token": "q8Xk...Zs"}), response_example("Verified", _USER_EXAMPLE)],
)


verify_email_link_get = extend_schema(
    tags=TAG,
    summary="Verify an email address from the mailed link",
    description=(
        "Verifies the address. A link already used for an account that is verified by now answers "
        "400 `already_verified`. Browsers (`Accept: text/html`) get a short HTML page."
    ),
    operation_id="auth_verify_email_link_open",
    parameters=[_NO_FORMAT_PARAMETER],
    request=None,
    responses=_VERIFICATION_RESPONSES,
    examples=[response_example("Verified", _USER_EXAMPLE)],
)


verify_email_link_post = extend_schema(
    tags=TAG,
    summary="Verify an email address from the mailed link",
    operation_id="auth_verify_email_link_confirm",
    parameters=[_NO_FORMAT_PARAMETER],
    request=None,
    responses=_VERIFICATION_RESPONSES,
    examples=[response_example("Verified", _USER_EXAMPLE)],
)


resend_verification_post = extend_schema(
    tags=TAG,
    summary="Mail a new verification link",
    description="Always 202, whether or not the address has an account (no account enumeration).",
    request=EmailInputSerializer,
    responses={202: DetailSerializer, **error_responses(400, 429)},
    examples=[request_example("Email", {"email": "ada@example.com"}), ACCEPTED],
)


login_post = extend_schema(
    tags=TAG,
    summary="Log in with username or email",
    # One of the two forms: with neither identifier the request cannot be valid (400).
    request=PolymorphicProxySerializer(
        component_name="LoginInput",
        serializers=[LoginByUsernameSerializer, LoginByEmailSerializer],
        resource_type_field_name=None,
    ),
    responses={
        200: LoginOutputSerializer,
        **error_responses(400, 429),
        401: OpenApiResponse(DetailSerializer, description="Wrong credentials or inactive account."),
        403: OpenApiResponse(DetailSerializer, description="Email not verified (`code: email_not_verified`)."),
    },
    examples=[
        request_example("By username", {"username": "ada", "password": "c0rrect-horse-battery"}),
        request_example("By email", {"email": "ada@example.com", "password": "c0rrect-horse-battery"}),
        response_example("Logged in", _TOKENS_EXAMPLE | {"user": _USER_EXAMPLE}),
    ],
)


logout_post = extend_schema(
    tags=TAG,
    summary="Revoke one refresh token",
    request=RefreshInputSerializer,
    responses={205: OpenApiResponse(description="Logged out."), **error_responses(400, 401)},
    examples=[request_example("Refresh", {"refresh": "eyJhbGciOiJIUzI1NiIs..."})],
)


logout_all_post = extend_schema(
    tags=TAG,
    summary="Revoke every refresh token of the caller",
    description="Access tokens already issued stop working at once too (401 `token_revoked`).",
    request=None,
    responses={205: OpenApiResponse(description="Logged out everywhere."), **error_responses(401)},
)


profile_get = extend_schema(
    tags=TAG,
    summary="Your profile",
    responses={200: UserSerializer, **error_responses(401)},
    examples=[response_example("Profile", _USER_EXAMPLE)],
)


profile_patch = extend_schema(
    tags=TAG,
    summary="Update your name",
    description="Only `first_name` and `last_name` can change; other fields are ignored.",
    request=ProfileUpdateSerializer,
    responses={200: UserSerializer, **error_responses(400, 401)},
    examples=[
        request_example("Rename", {"first_name": "Ada", "last_name": "King"}),
        response_example("Profile", _USER_EXAMPLE | {"last_name": "King"}),
    ],
)


password_change_post = extend_schema(
    tags=TAG,
    summary="Change your password",
    description="Revokes every refresh token of the account and returns a fresh pair for this client.",
    request=PasswordChangeInputSerializer,
    responses={200: PasswordChangeOutputSerializer, **error_responses(400, 401)},
    examples=[
        request_example("Change", {"old_password": "c0rrect-horse-battery", "new_password": "n3w-staple-lantern"}),
        response_example("Changed", {"detail": "Password changed."} | _TOKENS_EXAMPLE),
    ],
)


_REMOVED_EXAMPLE = {
    "documents": 3,
    "chunks": 41,
    "vectors": 41,
    "workspaces": 1,
    "memberships": 1,
    "invitations": 0,
    "api_keys": 1,
    "sessions": 4,
    "messages": 28,
    "idempotency_records": 2,
    "history_versions": 1,
    "message_counters": 1,
    "account_tokens": 1,
    "revoked_token_families": 0,
    "refresh_tokens": 3,
    "blacklisted_tokens": 2,
    "admin_log_entries": 0,
    "users": 1,
}


account_delete = extend_schema(
    tags=TAG,
    summary="Erase your account and everything it owns",
    description=(
        "Asks for the password again. Erases the personal workspace and every workspace where the caller "
        "is the only member (documents, their vectors, sessions, messages), the caller's memberships, "
        "sessions, API keys and tokens elsewhere, then the account; the response counts what was removed. "
        "A wrong password is 400 `wrong_password` and counts as a failed login. The last owner of a "
        "workspace that has other members gets 409 `transfer_ownership` naming those workspaces, and "
        "nothing is erased."
    ),
    request=AccountEraseInputSerializer,
    responses={200: AccountErasedSerializer, **error_responses(400, 401, 409, 429)},
    examples=[
        request_example("Erase", {"password": "c0rrect-horse-battery"}),
        response_example(
            "Erased", {"detail": "Your account and everything it owned were erased.", "removed": _REMOVED_EXAMPLE}
        ),
    ],
)


account_export_get = extend_schema(
    tags=TAG,
    summary="Download all of your data as JSON",
    description=(
        "A JSON file (`Content-Disposition: attachment`): profile, memberships, your sessions with their "
        "messages (content, answer status, citations, sources, feedback), the documents of workspaces you "
        "own alone, the API keys you created (never their secrets) and the invitations you sent. Other "
        "members' messages are not included. Limited to `THROTTLE_EXPORT` per user."
    ),
    responses={200: OpenApiTypes.OBJECT, **error_responses(401, 429)},
    examples=[
        response_example(
            "Export",
            {
                "format_version": 1,
                "exported_at": "2026-12-06T11:00:00Z",
                "profile": _USER_EXAMPLE | {"last_login": "2026-12-06T10:58:00Z"},
                "memberships": [
                    {"workspace_id": 3, "workspace_name": "ada's workspace", "personal": True, "role": "owner"}
                ],
                "sessions": [
                    {
                        "id": 12,
                        "title": "Passwords",
                        "workspace_id": 3,
                        "messages": [
                            {"id": 40, "sender": "user", "content": "How do I reset my password?", "metadata": {}},
                            {
                                "id": 41,
                                "sender": "bot",
                                "content": "Ask for a reset email [1].",
                                "metadata": {"answer_status": "answered", "citations": [], "sources": []},
                                "feedback_rating": 1,
                            },
                        ],
                    }
                ],
                "documents": [],
                "api_keys": [{"workspace_id": 3, "name": "ci", "prefix": "rk_3f9a1c", "scopes": ["chat"]}],
                "invitations_sent": [],
            },
        )
    ],
)


password_reset_post = extend_schema(
    tags=TAG,
    summary="Mail a password-reset token",
    description="Always 202, whether or not the address has an account (no account enumeration).",
    request=EmailInputSerializer,
    responses={202: DetailSerializer, **error_responses(400, 429)},
    examples=[request_example("Email", {"email": "ada@example.com"}), ACCEPTED],
)


password_reset_confirm_post = extend_schema(
    tags=TAG,
    summary="Set a new password with the mailed token",
    description="The token works once. Every refresh token of the account is revoked.",
    request=PasswordResetConfirmSerializer,
    responses={200: DetailSerializer, **error_responses(400, 429)},
    examples=[
        request_example("Confirm", {"token": "q8Xk...Zs", "new_password": "n3w-staple-lantern"}),
        response_example("Done", {"detail": "Password has been reset; log in with the new password."}),
    ],
)


token_refresh = extend_schema(
    tags=TAG,
    summary="Rotate a refresh token",
    description="Returns a new access and refresh pair; the refresh token sent is blacklisted.",
    request=RefreshInputSerializer,
    responses={200: TokenPairSerializer, **error_responses(400, 401)},
    examples=[
        request_example("Refresh", {"refresh": "eyJhbGciOiJIUzI1NiIs..."}),
        response_example("Rotated", _TOKENS_EXAMPLE),
    ],
)
