from django.urls import path

from users import apis

app_name = "users"

urlpatterns = [
    path("register/", apis.RegisterApi.as_view(), name="register"),
    path("verify-email/", apis.VerifyEmailApi.as_view(), name="verify-email"),
    path("verify-email/<str:token>/", apis.VerifyEmailLinkApi.as_view(), name="verify-email-link"),
    path("resend-verification/", apis.ResendVerificationApi.as_view(), name="resend-verification"),
    path("login/", apis.LoginApi.as_view(), name="login"),
    path("token/refresh/", apis.TokenRefreshApi.as_view(), name="token-refresh"),
    path("logout/", apis.LogoutApi.as_view(), name="logout"),
    path("logout-all/", apis.LogoutAllApi.as_view(), name="logout-all"),
    path("profile/", apis.ProfileApi.as_view(), name="profile"),
    path("me/", apis.AccountApi.as_view(), name="me"),
    path("me/export/", apis.AccountExportApi.as_view(), name="me-export"),
    path("password/change/", apis.PasswordChangeApi.as_view(), name="password-change"),
    path("password/reset/", apis.PasswordResetApi.as_view(), name="password-reset"),
    path("password/reset/confirm/", apis.PasswordResetConfirmApi.as_view(), name="password-reset-confirm"),
]
