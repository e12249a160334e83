"""Account endpoints: thin views over ``users.services``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenRefreshView

from users import services
from users.renderers import VerificationPageRenderer
from users.selectors import request_user
from users.serializers import (
    DetailSerializer,
    EmailInputSerializer,
    LoginByEmailSerializer,
    LoginByUsernameSerializer,
    LoginInputSerializer,
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
    TokenRefreshInputSerializer,
    UserSerializer,
)
from utils.schema import error_responses
from utils.throttling import ClientScopedThrottle

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


def _example(name: str, value: dict[str, Any], *, request: bool = False, status_code: int = 200) -> OpenApiExample:
    if request:
        return OpenApiExample(name, value=value, request_only=True)
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status_code)])


class AnonymousApi(APIView):
    """Base for the endpoints used before logging in: no auth, throttled per client address."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientScopedThrottle]


class RegisterApi(AnonymousApi):
    throttle_scope = "register"

    @extend_schema(
        tags=TAG,
        summary="Create an account",
        description="Creates an unverified account and mails a verification link.",
        request=RegisterInputSerializer,
        responses={201: RegisteredUserSerializer, **error_responses(400, 429)},
        examples=[
            _example(
                "Register",
                {"username": "ada", "email": "ada@example.com", "password": "c0rrect-horse-battery"},
                request=True,
            ),
            _example(
                "Created",
                {k: _USER_EXAMPLE[k] for k in ("id", "username", "email", "date_joined")} | {"is_verified": False},
                status_code=201,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        return Response(RegisteredUserSerializer(user).data, status=status.HTTP_201_CREATED)


class VerifyEmailApi(AnonymousApi):
    throttle_scope = "account_token"

    @extend_schema(
        tags=TAG,
        summary="Verify an email address with the mailed token",
        request=TokenInputSerializer,
        responses={200: UserSerializer, **error_responses(400, 429)},
        examples=[_example("Token", {"token": "q8Xk...Zs"}, request=True), _example("Verified", _USER_EXAMPLE)],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.email_verify(raw_token=serializer.validated_data["token"])
        return Response(UserSerializer(user).data)


class AcceptHeaderNegotiation(DefaultContentNegotiation):
    """JSON or the page by the ``Accept`` header alone: no ``?format=`` override (DRF's default would
    add one, answering 404 to an unknown value)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]  # the one setting it reads


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


class VerifyEmailLinkApi(AnonymousApi):
    """The link in the email: opening it (GET) or posting to it verifies the address. A browser
    (``Accept: text/html``) gets a short page instead of JSON."""

    throttle_scope = "account_token"
    renderer_classes = [JSONRenderer, VerificationPageRenderer]
    content_negotiation_class = AcceptHeaderNegotiation

    @extend_schema(
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
        examples=[_example("Verified", _USER_EXAMPLE)],
    )
    def get(self, request: Request, token: str) -> Response:
        user = services.email_verify(raw_token=token)
        return Response(UserSerializer(user).data)

    @extend_schema(
        tags=TAG,
        summary="Verify an email address from the mailed link",
        operation_id="auth_verify_email_link_confirm",
        parameters=[_NO_FORMAT_PARAMETER],
        request=None,
        responses=_VERIFICATION_RESPONSES,
        examples=[_example("Verified", _USER_EXAMPLE)],
    )
    def post(self, request: Request, token: str) -> Response:
        return self.get(request, token)


_ACCEPTED = _example("Accepted", {"detail": "If an account matches, an email is on its way."}, status_code=202)


class ResendVerificationApi(AnonymousApi):
    throttle_scope = "account_token"

    @extend_schema(
        tags=TAG,
        summary="Mail a new verification link",
        description="Always 202, whether or not the address has an account (no account enumeration).",
        request=EmailInputSerializer,
        responses={202: DetailSerializer, **error_responses(400, 429)},
        examples=[_example("Email", {"email": "ada@example.com"}, request=True), _ACCEPTED],
    )
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.verification_resend(email=serializer.validated_data["email"])
        return Response(_ACCEPTED.value, status=status.HTTP_202_ACCEPTED)


# Responses that carry tokens must never be stored by a cache (RFC 6749 5.1: Cache-Control: no-store).
_NO_STORE = method_decorator(never_cache, name="dispatch")


@_NO_STORE
class LoginApi(AnonymousApi):
    throttle_scope = "login"

    @extend_schema(
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
            _example("By username", {"username": "ada", "password": "c0rrect-horse-battery"}, request=True),
            _example("By email", {"email": "ada@example.com", "password": "c0rrect-horse-battery"}, request=True),
            _example("Logged in", _TOKENS_EXAMPLE | {"user": _USER_EXAMPLE}),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user, pair = services.user_login(identifier=data["identifier"], password=data["password"], request=request)
        return Response({"access": pair.access, "refresh": pair.refresh, "user": UserSerializer(user).data})


class LogoutApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=TAG,
        summary="Revoke one refresh token",
        request=RefreshInputSerializer,
        responses={205: OpenApiResponse(description="Logged out."), **error_responses(400, 401)},
        examples=[_example("Refresh", {"refresh": "eyJhbGciOiJIUzI1NiIs..."}, request=True)],
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.refresh_token_revoke(user=request_user(request), refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_205_RESET_CONTENT)


class LogoutAllApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=TAG,
        summary="Revoke every refresh token of the caller",
        description="Access tokens already issued stop working at once too (401 `token_revoked`).",
        request=None,
        responses={205: OpenApiResponse(description="Logged out everywhere."), **error_responses(401)},
    )
    def post(self, request: Request) -> Response:
        services.refresh_tokens_revoke_all(user=request_user(request))
        return Response(status=status.HTTP_205_RESET_CONTENT)


class ProfileApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=TAG,
        summary="Your profile",
        responses={200: UserSerializer, **error_responses(401)},
        examples=[_example("Profile", _USER_EXAMPLE)],
    )
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request_user(request)).data)

    @extend_schema(
        tags=TAG,
        summary="Update your name",
        description="Only `first_name` and `last_name` can change; other fields are ignored.",
        request=ProfileUpdateSerializer,
        responses={200: UserSerializer, **error_responses(400, 401)},
        examples=[
            _example("Rename", {"first_name": "Ada", "last_name": "King"}, request=True),
            _example("Profile", _USER_EXAMPLE | {"last_name": "King"}),
        ],
    )
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_profile_update(user=request_user(request), **serializer.validated_data)
        return Response(UserSerializer(user).data)


@_NO_STORE
class PasswordChangeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=TAG,
        summary="Change your password",
        description="Revokes every refresh token of the account and returns a fresh pair for this client.",
        request=PasswordChangeInputSerializer,
        responses={200: PasswordChangeOutputSerializer, **error_responses(400, 401)},
        examples=[
            _example(
                "Change", {"old_password": "c0rrect-horse-battery", "new_password": "n3w-staple-lantern"}, request=True
            ),
            _example("Changed", {"detail": "Password changed."} | _TOKENS_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.password_change(user=request_user(request), **serializer.validated_data)
        return Response({"detail": "Password changed.", "access": pair.access, "refresh": pair.refresh})


class PasswordResetApi(AnonymousApi):
    throttle_scope = "password_reset"

    @extend_schema(
        tags=TAG,
        summary="Mail a password-reset token",
        description="Always 202, whether or not the address has an account (no account enumeration).",
        request=EmailInputSerializer,
        responses={202: DetailSerializer, **error_responses(400, 429)},
        examples=[_example("Email", {"email": "ada@example.com"}, request=True), _ACCEPTED],
    )
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.password_reset_request(email=serializer.validated_data["email"])
        return Response(_ACCEPTED.value, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmApi(AnonymousApi):
    throttle_scope = "account_token"

    @extend_schema(
        tags=TAG,
        summary="Set a new password with the mailed token",
        description="The token works once. Every refresh token of the account is revoked.",
        request=PasswordResetConfirmSerializer,
        responses={200: DetailSerializer, **error_responses(400, 429)},
        examples=[
            _example("Confirm", {"token": "q8Xk...Zs", "new_password": "n3w-staple-lantern"}, request=True),
            _example("Done", {"detail": "Password has been reset; log in with the new password."}),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.password_reset_confirm(raw_token=data["token"], new_password=data["new_password"])
        return Response({"detail": "Password has been reset; log in with the new password."})


@extend_schema(
    tags=TAG,
    summary="Rotate a refresh token",
    description="Returns a new access and refresh pair; the refresh token sent is blacklisted.",
    request=RefreshInputSerializer,
    responses={200: TokenPairSerializer, **error_responses(400, 401)},
    examples=[
        _example("Refresh", {"refresh": "eyJhbGciOiJIUzI1NiIs..."}, request=True),
        _example("Rotated", _TOKENS_EXAMPLE),
    ],
)
@_NO_STORE
class TokenRefreshApi(TokenRefreshView):
    serializer_class = TokenRefreshInputSerializer
