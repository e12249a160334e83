"""OWASP API5:2023 Broken Function Level Authorization.

``ACCESS`` states who may call each method of each API route: anyone, any signed-in user, or
staff. The first test computes the same table from the views' own permission classes and fails if
they differ, so a new route (or a changed permission) needs a decision here. The HTTP tests then
call every staff-only function as an anonymous client and as a plain user (401 and 403 in the
error envelope, nothing changed), walk every admin page, and check the metrics endpoint.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from rest_framework.exceptions import APIException
from rest_framework.test import APIRequestFactory, force_authenticate

from background_tasks.models import JobRun
from rag.models import Document
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.security.routes import Route, admin_routes, api_routes
from users.models import User

pytestmark = pytest.mark.django_db

PUBLIC, USER, STAFF = "public", "user", "staff"
ACCESS: dict[tuple[str, str], str] = {
    ("users:register", "POST"): PUBLIC,
    ("users:verify-email", "POST"): PUBLIC,
    ("users:verify-email-link", "GET"): PUBLIC,
    ("users:verify-email-link", "POST"): PUBLIC,
    ("users:resend-verification", "POST"): PUBLIC,
    ("users:login", "POST"): PUBLIC,
    ("users:token-refresh", "POST"): PUBLIC,
    ("token-refresh-alias", "POST"): PUBLIC,
    ("users:logout", "POST"): USER,
    ("users:logout-all", "POST"): USER,
    ("users:profile", "GET"): USER,
    ("users:profile", "PATCH"): USER,
    ("users:password-change", "POST"): USER,
    ("users:me", "DELETE"): USER,
    ("users:me-export", "GET"): USER,
    ("usage:usage", "GET"): USER,
    ("users:password-reset", "POST"): PUBLIC,
    ("users:password-reset-confirm", "POST"): PUBLIC,
    ("rag:search", "GET"): USER,
    ("rag:categories", "GET"): USER,
    ("rag:documents", "GET"): USER,
    # Any user writes their own workspaces' documents; who may write which knowledge base (staff the
    # shared one, owners and admins a workspace's) is decided per request: tested below and in
    # tests/rag/test_api.py.
    ("rag:documents", "POST"): USER,
    ("rag:document-detail", "GET"): USER,
    ("rag:document-detail", "PATCH"): USER,
    ("rag:document-detail", "DELETE"): USER,
    ("rag:index", "POST"): USER,
    ("rag:index-documents", "POST"): USER,
    ("chat:sessions", "GET"): USER,
    ("chat:sessions", "POST"): USER,
    ("chat:session-detail", "GET"): USER,
    ("chat:session-detail", "PATCH"): USER,
    ("chat:session-detail", "DELETE"): USER,
    ("chat:session-messages", "GET"): USER,
    ("chat:session-messages", "POST"): USER,
    ("chat:session-export", "GET"): USER,
    ("chat:history", "GET"): USER,
    ("chat:message-feedback", "POST"): USER,
    ("workspaces:workspaces", "GET"): USER,
    ("workspaces:workspaces", "POST"): USER,
    ("workspaces:workspace-detail", "GET"): USER,
    ("workspaces:workspace-detail", "PATCH"): USER,
    ("workspaces:workspace-detail", "DELETE"): USER,
    ("workspaces:members", "GET"): USER,
    ("workspaces:member-detail", "PATCH"): USER,
    ("workspaces:member-detail", "DELETE"): USER,
    ("workspaces:leave", "POST"): USER,
    ("workspaces:invitations", "GET"): USER,
    ("workspaces:invitations", "POST"): USER,
    ("workspaces:invitation-detail", "DELETE"): USER,
    ("workspaces:invitation-accept", "POST"): USER,
    ("background_tasks:jobs", "GET"): STAFF,
    ("background_tasks:job-run", "POST"): STAFF,
    ("api_keys:list", "GET"): USER,  # owners and admins of the workspace (checked in the view)
    ("api_keys:list", "POST"): USER,
    ("api_keys:detail", "DELETE"): USER,
    ("health", "GET"): PUBLIC,
    ("schema", "GET"): PUBLIC,
    ("swagger-ui", "GET"): PUBLIC,
    ("redoc", "GET"): PUBLIC,
}


def may_call(route: Route, method: str, user: User | None) -> bool:
    """Whether the view's authentication and permission classes let ``user`` call ``method``."""
    kwargs = dict.fromkeys(route.parameters, "1")
    request = APIRequestFactory().generic(method, route.url(**kwargs))
    if user is not None:
        force_authenticate(request, user=user)
    view = route.view()
    view.args, view.kwargs, view.format_kwarg = (), kwargs, None
    drf_request = view.initialize_request(request)
    view.request = drf_request
    try:
        view.check_permissions(drf_request)
    except APIException:
        return False
    return True


def access_level(route: Route, method: str, user: User, staff: User) -> str:
    if may_call(route, method, None):
        return PUBLIC
    if may_call(route, method, user):
        return USER
    assert may_call(route, method, staff), f"{method} {route.name}: nobody may call it"
    return STAFF


def test_every_api_function_has_the_access_level_decided_for_it(user, staff_user):
    actual = {
        (route.name, method): access_level(route, method, user, staff_user)
        for route in api_routes()
        for method in route.methods
    }
    assert actual == ACCESS


# --- staff-only functions over HTTP ------------------------------------------------------------


def staff_only_calls(document: Document) -> list[tuple[str, str, dict[str, Any]]]:
    """The staff functions, and every write to the shared knowledge base (``document`` is in it)."""
    new = {"title": "Injected", "content": "Planted text.", "category": "FAQ", "workspace": "shared"}
    return [
        ("post", "/api/rag/documents/", new),
        ("patch", f"/api/rag/documents/{document.pk}/", {"title": "Defaced"}),
        ("delete", f"/api/rag/documents/{document.pk}/", {}),
        ("post", "/api/rag/index/", {"documents": [new], "workspace": "shared"}),
        ("post", "/api/rag/index-documents/", {"documents": [new], "workspace": "shared"}),
        ("get", "/api/ops/jobs/", {}),
        ("post", "/api/ops/jobs/cleanup_tokens/run/", {"dry_run": False}),
        ("post", "/api/ops/jobs/backup_data/run/", {}),
    ]


def test_staff_functions_refuse_anonymous_and_plain_users(anon_client, api_client):
    document = Document.objects.create(title="Pricing", content="Plans cost 10 EUR.", category="FAQ")
    calls = staff_only_calls(document)
    called = {(m.upper(), r.name) for r in api_routes() for m in r.methods if ACCESS[(r.name, m)] == STAFF}
    assert len(calls) >= len(called)  # every staff function is tried (job-run twice)
    for method, url, body in calls:
        for client, status, codes in [
            (anon_client, 401, {"not_authenticated"}),
            (api_client, 403, {"permission_denied"}),
        ]:
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == status, (method, url, response.content)
            assert response.json()["code"] in codes and set(response.json()) == {"detail", "code"}
    document.refresh_from_db()
    assert document.title == "Pricing" and Document.objects.count() == 1
    assert not JobRun.objects.exists()


def test_a_staff_flag_in_a_forged_token_does_not_help(anon_client, user):
    """Privilege comes from the database row, not from anything the client sends."""
    import jwt
    from django.conf import settings
    from rest_framework_simplejwt.tokens import AccessToken

    payload = dict(AccessToken.for_user(user).payload) | {"is_staff": True, "is_superuser": True, "role": "admin"}
    payload["iss"] = settings.SIMPLE_JWT["ISSUER"]
    token = jwt.encode(payload, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")  # even if correctly signed
    response = anon_client.get("/api/ops/jobs/", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_ROLE="admin")
    assert response.status_code == 403


# --- the admin site --------------------------------------------------------------------------------


def admin_urls() -> list[str]:
    """One URL per admin route (the login and logout pages aside), parameters filled in."""
    app_label = next(iter(admin.site._registry))._meta.app_label
    values = {"object_id": "1", "id": "1", "app_label": app_label, "content_type_id": 1, "url": "anything/"}
    urls = []
    for route in admin_routes():
        kwargs = {name: values[name] for name in route.parameters}
        if route.name in ("admin:login", "admin:logout"):
            continue
        if route.name != "admin:None":
            urls.append(reverse(route.name, kwargs=kwargs))
        elif route.pattern.endswith("(?P<url>.*)$"):  # the catch-all
            urls.append("/admin/anything/")
        else:  # the unnamed "<object_id>/" redirects to the change page
            urls.append(route.url(**kwargs))
    return urls


def test_every_admin_page_sends_anonymous_and_plain_users_to_the_login(user):
    urls = admin_urls()
    assert len(urls) >= 5 * len(admin.site._registry)  # changelist, add, change, delete, history per model
    anonymous, plain = Client(), Client()
    plain.force_login(user)
    for client in (anonymous, plain):
        for url in urls:
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                assert response.status_code == 302, (method, url, response.status_code)
                assert response["Location"].startswith("/admin/login/"), (url, response["Location"])


def test_the_admin_login_refuses_a_plain_user(user, staff_user):
    client = Client()
    response = client.post("/admin/login/", {"username": user.username, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/").status_code == 302
    client.post("/admin/login/", {"username": staff_user.username, "password": DEFAULT_PASSWORD})
    assert client.get("/admin/").status_code == 200  # the control: staff do get in


def test_a_deactivated_staff_member_loses_the_admin(staff_user):
    client = Client()
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200
    User.objects.filter(pk=staff_user.pk).update(is_active=False)
    assert client.get("/admin/").status_code == 302


# --- operations outside the API --------------------------------------------------------------------


def test_metrics_need_the_scrape_token(settings):
    client = Client()
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404  # not configured: not there at all
    settings.METRICS_TOKEN = "scrape-token-for-tests-0a9b8c"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    staff = UserFactory.create(is_staff=True)
    client.force_login(staff)  # an admin session is not a scrape token
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").status_code == 200
