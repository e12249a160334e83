"""What the service lets slip (issue 13, item 12): live tokens in logs and in the admin, internal
paths and errors in 503 bodies and the public health check."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from gunicorn.config import Config

from rag.providers.factory import reset_providers
from tests.factories import UserFactory
from users.models import AccountToken
from users.services import account_token_issue, tokens_for
from utils.access_log import RedactingLogger
from utils.exceptions import ProviderUnavailable
from utils.logging import JsonFormatter, RequestIdFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The production console handler in both formats (JSON and plain), on the root and ``django`` loggers."""
    buffer = io.StringIO()
    handlers = []
    plain: str = django_settings.LOGGING["formatters"]["plain"]["format"]  # type: ignore[index]
    for formatter in (JsonFormatter(), logging.Formatter(plain)):
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handler.setLevel(logging.INFO)
        handlers.append(handler)
    loggers = [logging.getLogger(), logging.getLogger("django")]
    for logger in loggers:
        for handler in handlers:
            logger.addHandler(handler)
    try:
        yield buffer
    finally:
        for logger in loggers:
            for handler in handlers:
                logger.removeHandler(handler)


# --- logs -------------------------------------------------------------------------------------------


def test_a_throttled_verification_link_leaves_no_live_token_in_the_log(settings, console, anon_client):
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {
        "DEFAULT_THROTTLE_RATES": settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] | {"account_token": "1/hour"}
    }
    user = UserFactory.create(is_verified=False)
    raw = account_token_issue(user=user, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    assert anon_client.get("/api/auth/verify-email/not-a-token/").status_code == 400
    throttled = anon_client.get(f"/api/auth/verify-email/{raw}/")
    assert throttled.status_code == 429
    logged = console.getvalue()
    assert "Too Many Requests: /api/auth/verify-email/[redacted]/" in logged  # the line is there, masked
    assert raw not in logged
    cache.clear()  # the throttle's hour has passed: the token still works, which is why it must not leak
    assert anon_client.get(f"/api/auth/verify-email/{raw}/").status_code == 200


def test_the_gunicorn_access_log_masks_tokens_in_paths_queries_and_referrers():
    raw = "Zk3v9_live-verification-token-0123456789abcdef"
    config = Config()
    config.set("accesslog", "-")
    logger = RedactingLogger(config)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/api/auth/verify-email/{raw}/?token={raw}",
        "PATH_INFO": f"/api/auth/verify-email/{raw}/",
        "QUERY_STRING": f"token={raw}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"https://mail.example.com/?next=/api/auth/verify-email/{raw}/",
    }
    response = type("Response", (), {"status": "429 Too Many Requests", "sent": 10, "headers": []})()
    request = type("Request", (), {"headers": []})()
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=3))
    line = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %(U)s %(q)s %(f)s' % atoms  # noqa: UP031 (gunicorn's own format)
    assert raw not in line
    assert '"GET /api/auth/verify-email/[redacted]/?token=[redacted] HTTP/1.1" 429' in line
    assert re.search(r"utils\.access_log\.RedactingLogger", Path("config/gunicorn.conf.py").read_text())


# --- the admin --------------------------------------------------------------------------------------


def test_the_admin_never_shows_a_live_refresh_token(user):
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    refresh = tokens_for(user).refresh
    outstanding = OutstandingToken.objects.get(token=refresh)
    admin = Client()
    admin.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    pages = [
        admin.get("/admin/token_blacklist/outstandingtoken/"),
        admin.get(f"/admin/token_blacklist/outstandingtoken/{outstanding.pk}/change/"),
        admin.get("/admin/token_blacklist/outstandingtoken/", {"q": outstanding.jti}),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert outstanding.jti in html  # the control: the token's row is on the page
        assert refresh not in html and refresh.split(".")[2] not in html


# --- internal errors and paths ----------------------------------------------------------------------


@pytest.fixture
def unusable_index(settings: Any, tmp_path: Path) -> str:
    """The FAISS directory sits under a regular file: every use fails with a ProviderUnavailable naming it."""
    blocker = tmp_path / "srv-internal-7c1e"
    blocker.write_text("not a directory")
    settings.VECTOR_INDEX_DIR = blocker / "index"
    reset_providers()
    return str(blocker)


def test_a_provider_error_reaches_users_without_paths_or_internal_text(
    api_client, staff_client, unusable_index, monkeypatch
):
    from rag.providers.faiss_store import FaissVectorStore

    def unusable(self: Any, *args: Any, **kwargs: Any) -> Any:  # what the store raises for such a directory
        raise ProviderUnavailable(f"Cannot use the FAISS index directory {unusable_index}/index: [Errno 20]")

    monkeypatch.setattr(FaissVectorStore, "query", unusable)
    response = api_client.get("/api/rag/search/", {"q": "reset my password"})
    assert response.status_code == 503
    body = response.json()
    assert unusable_index not in response.content.decode() and "srv-internal" not in response.content.decode()
    assert body == {"detail": "An upstream provider is unavailable.", "code": "provider_unavailable"}
    staff = staff_client.get("/api/rag/search/", {"q": "reset my password"})
    assert staff.status_code == 503 and unusable_index in staff.json()["detail"]  # the control: staff see it


def test_the_public_health_check_names_what_is_down_and_nothing_more(anon_client, staff_user, unusable_index):
    public = anon_client.get("/api/health/")
    assert public.status_code == 503
    body = public.json()
    assert body["down"] == ["vector_store"] and body["status"] == "unavailable"
    assert "srv-internal" not in public.content.decode()
    assert all(set(check) == {"ok", "latency_ms"} for check in body["checks"].values())
    staff = Client(HTTP_AUTHORIZATION=f"Bearer {tokens_for(staff_user).access}").get("/api/health/")
    assert staff.status_code == 503 and unusable_index in staff.json()["checks"]["vector_store"]["error"]
    assert staff.json()["checks"]["database"]["backend"]  # details, for staff
    admin = Client()
    admin.force_login(staff_user)  # an admin session works too
    assert "error" in admin.get("/api/health/").json()["checks"]["vector_store"]
    garbage = anon_client.get("/api/health/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert garbage.status_code == 503 and "error" not in garbage.json()["checks"]["vector_store"]
