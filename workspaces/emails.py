"""Workspace emails: invitations. Sent through the account outbox after the transaction commits;
a mail failure is logged (without the token-bearing body), never turned into a failed request."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

ACCEPT_PATH = "/api/workspaces/invitations/accept/"


@dataclass(frozen=True)
class InvitationMail:
    """What the mail says; plain values, so the outbox thread touches no model."""

    email: str
    workspace: str
    inviter: str
    role: str


def _how_to_accept(raw_token: str) -> str:
    if settings.WORKSPACE_INVITATION_URL_TEMPLATE:
        return f"Open this link to accept:\n\n{settings.WORKSPACE_INVITATION_URL_TEMPLATE.format(token=raw_token)}"
    return (
        f'Log in, then send this token as {{"token": "…"}} to {settings.PUBLIC_BASE_URL}{ACCEPT_PATH} :\n\n{raw_token}'
    )


def send_invitation_email(mail: InvitationMail, raw_token: str) -> None:
    body = render_to_string(
        "workspaces/invitation_email.txt",
        {
            "inviter": mail.inviter,
            "workspace": mail.workspace,
            "role": mail.role,
            "email": mail.email,
            "hours": settings.WORKSPACE_INVITATION_TTL_HOURS,
            "how": _how_to_accept(raw_token),
        },
    )
    subject = f"Invitation to the workspace {mail.workspace}"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [mail.email], fail_silently=False)
    except Exception:  # boundary: SMTP errors of every kind; never log the token-bearing body
        logger.exception("Could not send a workspace invitation")
