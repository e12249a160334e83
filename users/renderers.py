"""A small HTML page for the emailed verification link, for whoever opens it in a browser.

API clients keep getting JSON: the page is chosen only when the client asks for ``text/html``
(DRF's content negotiation), which browsers and mail previews do and ``curl`` does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.template.loader import render_to_string
from rest_framework.renderers import BaseRenderer

_LOG_IN = "You can now log in: POST /api/auth/login/ with your username or email and password."
_NEW_LINK = "Ask for a new link: POST /api/auth/resend-verification/ with your email address."


def _page(status: int, data: Any) -> dict[str, str]:
    if status < 400:
        return {"tone": "ok", "title": "Email address verified", "message": "Thank you.", "next_step": _LOG_IN}
    code = data.get("code") if isinstance(data, Mapping) else None
    detail = str(data.get("detail", "")) if isinstance(data, Mapping) else ""
    if code == "already_verified":
        return {"tone": "ok", "title": "Already verified", "message": detail, "next_step": _LOG_IN}
    if code == "invalid_token":
        return {"tone": "problem", "title": "This link does not work", "message": detail, "next_step": _NEW_LINK}
    return {"tone": "problem", "title": "Not verified yet", "message": detail or "Please try again later."}


class VerificationPageRenderer(BaseRenderer):
    """Renders the verification outcome (the user, or the error envelope) as a short HTML page."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        status = response.status_code if response is not None else 200
        return render_to_string("users/verify_email.html", _page(status, data)).encode()
