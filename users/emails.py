"""Account emails. Sent after the surrounding transaction commits; a mail failure is logged,
never turned into a failed request (the user can ask for another email)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from users.models import User

logger = logging.getLogger(__name__)


def verification_link(raw_token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/auth/verify-email/{raw_token}/"


def _send(user: User, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
    except Exception:  # boundary: SMTP errors of every kind; never log the token-bearing body
        logger.exception("Could not send %r to user %s", subject, user.pk)


def send_verification_email(user: User, raw_token: str) -> None:
    hours = settings.EMAIL_VERIFICATION_TTL_HOURS
    body = (
        f"Hello {user.get_username()},\n\n"
        "Please confirm your email address by opening this link:\n\n"
        f"{verification_link(raw_token)}\n\n"
        f"The link works once and expires in {hours} hours. If you did not create an account, "
        "you can ignore this message.\n"
    )
    _send(user, "Confirm your email address", body)


def send_password_reset_email(user: User, raw_token: str) -> None:
    hours = settings.PASSWORD_RESET_TTL_HOURS
    if settings.PASSWORD_RESET_URL_TEMPLATE:
        link = settings.PASSWORD_RESET_URL_TEMPLATE.format(token=raw_token)
        how = f"Open this link to choose a new password:\n\n{link}"
    else:
        how = (
            "Send this token with your new password to "
            f"{settings.PUBLIC_BASE_URL}/api/auth/password/reset/confirm/ :\n\n{raw_token}"
        )
    body = (
        f"Hello {user.get_username()},\n\n"
        "Someone (hopefully you) asked to reset the password of your account.\n"
        f"{how}\n\n"
        f"It works once and expires in {hours} hour(s). If you did not ask for this, ignore this message: "
        "your password has not changed.\n"
    )
    _send(user, "Reset your password", body)
