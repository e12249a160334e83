"""Account endpoints: thin views over ``users.services``."""

from __future__ import annotations

from types import SimpleNamespace

from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenRefreshView

from users import schema, services
from users.erasure import account_erase
from users.renderers import VerificationPageRenderer
from users.selectors import account_export, request_user
from users.serializers import (
    AccountEraseInputSerializer,
    EmailInputSerializer,
    LoginInputSerializer,
    PasswordChangeInputSerializer,
    PasswordResetConfirmSerializer,
    ProfileUpdateSerializer,
    RefreshInputSerializer,
    RegisteredUserSerializer,
    RegisterInputSerializer,
    TokenInputSerializer,
    TokenRefreshInputSerializer,
    UserSerializer,
)
from utils.throttling import ClientScopedThrottle, ScopedThrottle


class AnonymousApi(APIView):
    """Base for the endpoints used before logging in: no auth, throttled per client address."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientScopedThrottle]


class RegisterApi(AnonymousApi):
    throttle_scope = "register"

    @schema.register_post
    def post(self, request: Request) -> Response:
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_register(**serializer.validated_data)
        return Response(RegisteredUserSerializer(user).data, status=status.HTTP_201_CREATED)


class VerifyEmailApi(AnonymousApi):
    throttle_scope = "account_token"

    @schema.verify_email_post
    def post(self, request: Request) -> Response:
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.email_verify(raw_token=serializer.validated_data["token"])
        return Response(UserSerializer(user).data)


class AcceptHeaderNegotiation(DefaultContentNegotiation):
    """JSON or the page by the ``Accept`` header alone: no ``?format=`` override (DRF's default would
    add one, answering 404 to an unknown value)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)  # type: ignore[assignment]  # the one setting it reads


class VerifyEmailLinkApi(AnonymousApi):
    """The link in the email: opening it (GET) or posting to it verifies the address. A browser
    (``Accept: text/html``) gets a short page instead of JSON."""

    throttle_scope = "account_token"
    renderer_classes = [JSONRenderer, VerificationPageRenderer]
    content_negotiation_class = AcceptHeaderNegotiation

    @schema.verify_email_link_get
    def get(self, request: Request, token: str) -> Response:
        user = services.email_verify(raw_token=token)
        return Response(UserSerializer(user).data)

    @schema.verify_email_link_post
    def post(self, request: Request, token: str) -> Response:
        return self.get(request, token)


class ResendVerificationApi(AnonymousApi):
    throttle_scope = "account_token"

    @schema.resend_verification_post
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.verification_resend(email=serializer.validated_data["email"])
        return Response(schema.ACCEPTED.value, status=status.HTTP_202_ACCEPTED)


# Responses that carry tokens must never be stored by a cache (RFC 6749 5.1: Cache-Control: no-store).
_NO_STORE = method_decorator(never_cache, name="dispatch")


@_NO_STORE
class LoginApi(AnonymousApi):
    throttle_scope = "login"

    @schema.login_post
    def post(self, request: Request) -> Response:
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user, pair = services.user_login(identifier=data["identifier"], password=data["password"], request=request)
        return Response({"access": pair.access, "refresh": pair.refresh, "user": UserSerializer(user).data})


class LogoutApi(APIView):
    permission_classes = [IsAuthenticated]

    @schema.logout_post
    def post(self, request: Request) -> Response:
        serializer = RefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.refresh_token_revoke(user=request_user(request), refresh=serializer.validated_data["refresh"])
        return Response(status=status.HTTP_205_RESET_CONTENT)


class LogoutAllApi(APIView):
    permission_classes = [IsAuthenticated]

    @schema.logout_all_post
    def post(self, request: Request) -> Response:
        services.refresh_tokens_revoke_all(user=request_user(request))
        return Response(status=status.HTTP_205_RESET_CONTENT)


class ProfileApi(APIView):
    permission_classes = [IsAuthenticated]

    @schema.profile_get
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request_user(request)).data)

    @schema.profile_patch
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_profile_update(user=request_user(request), **serializer.validated_data)
        return Response(UserSerializer(user).data)


class AccountApi(APIView):
    """``DELETE /api/auth/me/``: erase the account and everything it owns, password required."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "login"  # a password check: limited like a login attempt, per user

    @schema.account_delete
    def delete(self, request: Request) -> Response:
        serializer = AccountEraseInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request_user(request)
        removed = account_erase(user=user, password=serializer.validated_data["password"], request=request)
        return Response({"detail": "Your account and everything it owned were erased.", "removed": removed})


@_NO_STORE
class AccountExportApi(APIView):
    """``GET /api/auth/me/export/``: everything of the caller's, as a JSON file to download."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "export"

    @schema.account_export_get
    def get(self, request: Request) -> Response:
        user = request_user(request)
        filename = f"account-{user.pk}-export-{timezone.now():%Y%m%d}.json"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(account_export(user=user), headers=headers)


@_NO_STORE
class PasswordChangeApi(APIView):
    permission_classes = [IsAuthenticated]

    @schema.password_change_post
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.password_change(user=request_user(request), **serializer.validated_data)
        return Response({"detail": "Password changed.", "access": pair.access, "refresh": pair.refresh})


class PasswordResetApi(AnonymousApi):
    throttle_scope = "password_reset"

    @schema.password_reset_post
    def post(self, request: Request) -> Response:
        serializer = EmailInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.password_reset_request(email=serializer.validated_data["email"])
        return Response(schema.ACCEPTED.value, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmApi(AnonymousApi):
    throttle_scope = "account_token"

    @schema.password_reset_confirm_post
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.password_reset_confirm(raw_token=data["token"], new_password=data["new_password"])
        return Response({"detail": "Password has been reset; log in with the new password."})


@schema.token_refresh
@_NO_STORE
class TokenRefreshApi(TokenRefreshView):
    serializer_class = TokenRefreshInputSerializer
