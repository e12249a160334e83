"""The admin site with the login lockout of ``users.lockout``: a locked client or account gets the
login page again with a 429 and ``Retry-After``, without its password being checked."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from users.lockout import login_failure_record, login_locked_for


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, counting wrong credentials against the client and the account."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            if self.user_cache is None and self.request is not None:  # wrong credentials, not a non-staff login
                login_failure_record(request=self.request, identifier=self.cleaned_data.get("username") or "")
            raise


class AdminSite(admin.AdminSite):
    login_form = LockoutAuthenticationForm

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            wait = login_locked_for(request=request, identifier=request.POST.get("username", ""))
            if wait:
                return self._locked_out(request, wait, extra_context)
        return super().login(request, extra_context)

    def _locked_out(self, request: HttpRequest, wait: int, extra_context: dict[str, Any] | None) -> HttpResponse:
        minutes = max(1, round(wait / 60))
        messages.error(request, f"Too many failed logins. Try again in about {minutes} minute(s).")
        context: dict[str, Any] = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
            "form": LockoutAuthenticationForm(request),  # unbound: nothing is checked
            REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name),
            **(extra_context or {}),
        }
        request.current_app = self.name
        response = TemplateResponse(request, self.login_template or "admin/login.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
