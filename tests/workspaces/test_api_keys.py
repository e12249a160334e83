"""Workspace API keys (issue 15, DESIGN §8): management, authentication, revocation, expiry,
scopes, confinement to the key's workspace, throttling as the creator, hashing at rest."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework.test import APIClient

from chat.models import ChatMessage, ChatSession
from rag.models import Document
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.security.routes import api_routes
from users.models import User
from workspaces.api_keys import api_key_create, key_hash
from workspaces.authentication import ApiKeyAuthentication, ApiKeyThrottle
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.permissions import API_KEY_SCOPES, required_scope
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["chat", "documents:read", "documents:write"]


def keys_url(workspace: Workspace, key_id: int | None = None) -> str:
    base = f"/api/workspaces/{workspace.pk}/api-keys/"
    return f"{base}{key_id}/" if key_id is not None else base


def make_key(user: User, workspace: Workspace | None = None, scopes: list[str] | None = None, **kwargs: Any) -> str:
    workspace = workspace or workspace_personal_get(user=user)
    return api_key_create(
        workspace=workspace, created_by=user, name="integration", scopes=scopes or ALL_SCOPES, **kwargs
    ).raw_key


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json() == {"detail": response.json()["detail"], "code": code}


@pytest.fixture
def workspace(user: User) -> Workspace:
    return workspace_personal_get(user=user)


# --- management (JWT only) ---------------------------------------------------------------------


def test_create_shows_the_key_once_and_stores_only_its_hash(api_client, user, workspace):
    response = api_client.post(
        keys_url(workspace),
        {"name": "Helpdesk", "scopes": ["documents:read", "chat"], "expires_in_days": 30},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["key"]
    assert raw.startswith(f"rk_{body['prefix']}_") and len(raw) > 50
    assert body["scopes"] == ["chat", "documents:read"]  # canonical order
    assert body["created_by"] == {"id": user.pk, "username": user.username}
    assert body["workspace"] == workspace.pk and body["revoked_at"] is None and body["last_used_at"] is None
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)
    assert response["Cache-Control"] == "no-store"

    row = ApiKey.objects.get()
    assert row.key_hash == key_hash(raw) and row.key_hash != raw
    secret = raw.split("_", 2)[2]
    stored = " ".join(str(value) for value in ApiKey.objects.values().get().values())
    assert raw not in stored and secret not in stored

    listed = api_client.get(keys_url(workspace)).json()
    assert listed["count"] == 1 and "key" not in listed["results"][0]
    assert raw not in str(listed) and listed["results"][0]["prefix"] == body["prefix"]


def test_list_shows_every_key_of_the_workspace_only(api_client, user, workspace):
    make_key(user, workspace, ["chat"])
    other = workspace_create(name="Team", owner=user)
    make_key(user, other, ["chat"])
    results = api_client.get(keys_url(workspace)).json()["results"]
    assert [r["workspace"] for r in results] == [workspace.pk]
    assert set(results[0]) == {
        "id",
        "workspace",
        "name",
        "prefix",
        "scopes",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    }


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": ["chat", "chat"]}, "scopes"),
        ({"name": "x", "scopes": "chat"}, "scopes"),
        ({"name": "", "scopes": ["chat"]}, "name"),
        ({"name": "x", "scopes": ["chat"], "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "scopes": ["chat"], "expires_in_days": 366}, "expires_in_days"),
        ({"name": "x", "scopes": ["chat"], "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["chat"], "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["chat"], "expires_in_days": 5, "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_create_validates_its_input(api_client, workspace, body, field):
    response = api_client.post(keys_url(workspace), body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content
    assert not ApiKey.objects.exists()


def test_only_owners_and_admins_manage_keys_and_other_workspaces_are_not_found(user, client_for):
    team = workspace_create(name="Team", owner=user)
    key = ApiKey.objects.get(pk=api_key_create(workspace=team, created_by=user, name="k", scopes=["chat"]).api_key.pk)
    member, admin, stranger = UserFactory.create(), UserFactory.create(), UserFactory.create()
    Membership.objects.create(workspace=team, user=member, role=Membership.Role.MEMBER)
    Membership.objects.create(workspace=team, user=admin, role=Membership.Role.ADMIN)
    body = {"name": "k2", "scopes": ["chat"]}

    assert_error(client_for(member).get(keys_url(team)), 403, "permission_denied")
    assert_error(client_for(member).post(keys_url(team), body, format="json"), 403, "permission_denied")
    assert_error(client_for(member).delete(keys_url(team, key.pk)), 403, "permission_denied")
    for method, args in [("get", ()), ("post", (body,)), ("delete", ())]:
        url = keys_url(team, key.pk) if method == "delete" else keys_url(team)
        assert_error(getattr(client_for(stranger), method)(url, *args, format="json"), 404, "not_found")
    # Their own workspace's URL with this key's id: not found either.
    stranger_ws = workspace_personal_get(user=stranger)
    assert_error(client_for(stranger).delete(keys_url(stranger_ws, key.pk)), 404, "not_found")
    key.refresh_from_db()
    assert key.revoked_at is None

    assert client_for(admin).get(keys_url(team)).json()["count"] == 1
    assert client_for(admin).post(keys_url(team), body, format="json").status_code == 201
    assert client_for(admin).delete(keys_url(team, key.pk)).status_code == 204


def test_live_keys_per_workspace_are_capped(api_client, workspace, settings):
    settings.API_KEYS_MAX_PER_WORKSPACE = 2
    body = {"name": "k", "scopes": ["chat"]}
    ids = [api_client.post(keys_url(workspace), body, format="json").json()["id"] for _ in range(2)]
    assert_error(api_client.post(keys_url(workspace), body, format="json"), 409, "api_key_limit_reached")
    assert api_client.delete(keys_url(workspace, ids[0])).status_code == 204
    assert api_client.post(keys_url(workspace), body, format="json").status_code == 201  # revoked keys do not count
    ApiKey.objects.filter(pk=ids[1]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_client.post(keys_url(workspace), body, format="json").status_code == 201  # nor do expired ones


# --- authentication --------------------------------------------------------------------------


def test_a_key_acts_as_its_creator_on_chat(user, workspace):
    client = key_client(make_key(user, workspace, ["chat"]))
    created = client.post("/api/chat/sessions/", {"title": "from the helpdesk"}, format="json")
    assert created.status_code == 201, created.content
    session = ChatSession.objects.get(pk=created.json()["id"])
    assert session.user == user and session.workspace == workspace
    assert client.get("/api/chat/sessions/").json()["count"] == 1
    assert client.get(f"/api/chat/sessions/{session.pk}/").status_code == 200
    assert client.get("/api/chat/history/").status_code == 200


def test_a_revoked_key_is_refused_on_the_very_next_request(api_client, user, workspace):
    raw = make_key(user, workspace, ["chat"])
    client = key_client(raw)
    assert client.get("/api/chat/sessions/").status_code == 200
    key = ApiKey.objects.get()
    assert api_client.delete(keys_url(workspace, key.pk)).status_code == 204
    response = client.get("/api/chat/sessions/")
    assert_error(response, 401, "api_key_invalid")
    assert response["WWW-Authenticate"]
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_client.delete(keys_url(workspace, key.pk)).status_code == 204  # idempotent
    assert ApiKey.objects.get().revoked_at == key.revoked_at


def test_an_expired_key_is_refused(user, workspace):
    raw = make_key(user, workspace, ["chat"], expires_at=timezone.now() + timedelta(days=1))
    client = key_client(raw)
    assert client.get("/api/chat/sessions/").status_code == 200
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(client.get("/api/chat/sessions/"), 401, "api_key_invalid")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"),  # right prefix, wrong secret
        lambda raw: "rk_zzzzzzzz_" + raw.split("_", 2)[2],  # unknown prefix
        lambda raw: raw.replace("rk_", "xx_", 1),
        lambda raw: "rk_" + raw.split("_", 2)[1],  # no secret
        lambda raw: f"{raw} extra",
        lambda raw: "",
    ],
)
def test_unknown_or_malformed_keys_are_refused(user, workspace, mangle):
    raw = make_key(user, workspace, ["chat"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {mangle(raw)}".strip())
    assert_error(client.get("/api/chat/sessions/"), 401, "api_key_invalid")


def test_the_header_keyword_is_case_insensitive_and_bearer_still_works(user, workspace, api_client):
    raw = make_key(user, workspace, ["chat"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"api-key {raw}")
    assert client.get("/api/chat/sessions/").status_code == 200
    assert api_client.get("/api/chat/sessions/").status_code == 200


@pytest.mark.parametrize("change", ["inactive", "demoted", "removed"])
def test_a_key_dies_with_its_creators_access(user, change):
    team = workspace_create(name="Team", owner=UserFactory.create())
    Membership.objects.create(workspace=team, user=user, role=Membership.Role.ADMIN)
    client = key_client(make_key(user, team, ["chat"]))
    assert client.get("/api/chat/sessions/").status_code == 200
    if change == "inactive":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif change == "demoted":
        Membership.objects.filter(user=user, workspace=team).update(role=Membership.Role.MEMBER)
    else:
        Membership.objects.filter(user=user, workspace=team).delete()
    assert_error(client.get("/api/chat/sessions/"), 401, "api_key_invalid")


def test_last_used_is_written_at_most_once_a_minute(user, workspace):
    client = key_client(make_key(user, workspace, ["chat"]))
    assert client.get("/api/chat/sessions/").status_code == 200
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/chat/sessions/").status_code == 200
    assert not [q for q in queries if q["sql"].startswith("UPDATE") and "apikey" in q["sql"].lower()]
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    assert client.get("/api/chat/sessions/").status_code == 200
    later = ApiKey.objects.get().last_used_at
    assert later is not None and later > first


def test_a_key_costs_one_query_like_a_token(user, workspace, api_client):
    """Key, creator, workspace and the creator's role come in one query (after the first use,
    which also records last_used_at), as the user does for a JWT."""
    client = key_client(make_key(user, workspace, ["chat"]))
    client.get("/api/chat/sessions/")
    api_client.get("/api/chat/sessions/")
    with CaptureQueriesContext(connection) as by_key:
        assert client.get("/api/chat/sessions/").status_code == 200
    with CaptureQueriesContext(connection) as by_token:
        assert api_client.get("/api/chat/sessions/").status_code == 200
    assert len(by_key) == len(by_token)


# --- scopes and where keys are refused ------------------------------------------------------------


def test_a_read_key_cannot_write_documents(staff_user):
    # Even with a staff creator (who may write the shared base) the scope decides first.
    client = key_client(make_key(staff_user, scopes=["documents:read"]))
    assert client.get("/api/rag/documents/").status_code == 200
    assert client.get("/api/rag/categories/").status_code == 200
    new = {"title": "Planted", "content": "Planted text.", "category": "FAQ"}
    assert_error(client.post("/api/rag/documents/", new, format="json"), 403, "insufficient_scope")
    assert_error(client.post("/api/rag/index/", {"documents": [new]}, format="json"), 403, "insufficient_scope")
    assert not Document.objects.exists()


def test_a_read_key_reads_documents_and_head_follows_get(user, workspace):
    document = Document.objects.create(title="Pricing", content="Plans cost 10 EUR.", category="FAQ")
    client = key_client(make_key(user, workspace, ["documents:read"]))
    assert client.get(f"/api/rag/documents/{document.pk}/").json()["title"] == "Pricing"
    assert client.head("/api/rag/documents/").status_code == 200
    chat_only = key_client(make_key(user, workspace, ["chat"]))
    assert chat_only.head("/api/rag/documents/").status_code == 403


def test_a_key_dies_with_its_workspace(user):
    team = workspace_create(name="Team", owner=user)
    client = key_client(make_key(user, team, ["chat"]))
    assert client.get("/api/chat/sessions/").status_code == 200
    team.delete()
    assert not ApiKey.objects.exists()
    assert_error(client.get("/api/chat/sessions/"), 401, "api_key_invalid")


def test_a_chat_key_cannot_read_documents_or_search(user, workspace):
    document = Document.objects.create(title="Pricing", content="Plans cost 10 EUR.", category="FAQ")
    client = key_client(make_key(user, workspace, ["chat"]))
    for url in ["/api/rag/documents/", f"/api/rag/documents/{document.pk}/", "/api/rag/search/?q=price"]:
        assert_error(client.get(url), 403, "insufficient_scope")
    assert_error(client.get("/api/rag/categories/"), 403, "insufficient_scope")


def test_a_documents_key_cannot_chat(user, workspace):
    client = key_client(make_key(user, workspace, ["documents:read", "documents:write"]))
    assert_error(client.get("/api/chat/sessions/"), 403, "insufficient_scope")
    assert_error(client.post("/api/chat/sessions/", {}, format="json"), 403, "insufficient_scope")
    assert not ChatSession.objects.exists()


def test_keys_never_work_on_the_account_or_key_management(api_client, user, workspace):
    client = key_client(make_key(user, workspace, ALL_SCOPES))
    key = ApiKey.objects.get()
    calls = [
        ("get", "/api/auth/profile/", {}),
        ("patch", "/api/auth/profile/", {"first_name": "Mallory"}),
        ("post", "/api/auth/password/change/", {"old_password": DEFAULT_PASSWORD, "new_password": "An0ther-pass-99"}),
        ("post", "/api/auth/logout-all/", {}),
        ("get", keys_url(workspace), {}),
        ("post", keys_url(workspace), {"name": "minted", "scopes": ["chat"]}),
        ("delete", keys_url(workspace, key.pk), {}),
        ("get", "/api/ops/jobs/", {}),
    ]
    for method, url, body in calls:
        assert_error(getattr(client, method)(url, body, format="json"), 403, "api_key_not_allowed")
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD) and user.first_name != "Mallory"
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().revoked_at is None
    assert api_client.get("/api/auth/profile/").status_code == 200  # the JWT was not logged out


def test_every_route_outside_the_scope_map_refuses_a_key(user, workspace):
    """Walks the URLconf: a route added later is closed to keys unless listed in API_KEY_SCOPES."""
    client = key_client(make_key(user, workspace, ALL_SCOPES))
    checked = 0
    for route in api_routes():
        view = route.view
        if not isinstance(view, type) or not hasattr(view, "authentication_classes"):
            continue
        if ApiKeyAuthentication not in [type(a) for a in view().get_authenticators()]:
            continue  # anonymous endpoints (login, health, schema): a key is simply not read there
        for method in route.methods:
            if required_scope(view, method) is not None:
                continue
            url = route.url(**dict.fromkeys(route.parameters, "1"))
            response = getattr(client, method.lower())(url, {}, format="json")
            assert response.status_code == 403, (method, route.name, response.content)
            assert response.json()["code"] == "api_key_not_allowed", (method, route.name)
            checked += 1
    assert checked >= 8


def test_the_scope_map_names_real_routed_views_and_methods():
    routed = {f"{r.view.__module__}.{r.view.__qualname__}": r.methods for r in api_routes() if isinstance(r.view, type)}
    for path, methods in API_KEY_SCOPES.items():
        assert path in routed, f"{path} is not routed"
        assert set(methods) <= routed[path], path
        assert set(methods.values()) <= set(ApiKey.Scope.values), path


# --- throttling and workspaces ----------------------------------------------------------------


def test_a_key_is_throttled_with_its_creator(api_client, user, workspace, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**rates, "session_create": "2/min"},
    }
    client = key_client(make_key(user, workspace, ["chat"]))
    assert api_client.post("/api/chat/sessions/", {}, format="json").status_code == 201
    assert client.post("/api/chat/sessions/", {}, format="json").status_code == 201
    response = client.post("/api/chat/sessions/", {}, format="json")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert_error(api_client.post("/api/chat/sessions/", {}, format="json"), 429, "throttled")


def test_a_keys_messages_count_against_its_creators_daily_quota(api_client, user, workspace, knowledge_base, settings):
    settings.CHAT_DAILY_QUOTA = 2
    client = key_client(make_key(user, workspace, ["chat"]))
    session = client.post("/api/chat/sessions/", {}, format="json").json()
    url = f"/api/chat/sessions/{session['id']}/messages/"
    sent = client.post(url, {"content": "what is an AI chatbot?"}, format="json")
    assert sent.status_code == 201, sent.content
    assert sent.json()["bot_message"]["answer_status"] == "answered"
    assert api_client.post(url, {"content": "what is an AI chatbot?"}, format="json").status_code == 201
    assert_error(client.post(url, {"content": "and then?"}, format="json"), 429, "daily_quota_exceeded")
    assert ChatMessage.objects.filter(sender="user", session__user=user).count() == 2


def test_a_key_has_a_throttle_of_its_own(user, workspace, settings, api_client):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "api_key": "2/min"}}
    client = key_client(make_key(user, workspace, ["chat"]))
    other = key_client(make_key(user, workspace, ["chat"]))
    assert [client.get("/api/chat/sessions/").status_code for _ in range(2)] == [200, 200]
    response = client.get("/api/chat/sessions/")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert other.get("/api/chat/sessions/").status_code == 200  # per key, not per user
    assert api_client.get("/api/chat/sessions/").status_code == 200


def test_the_key_throttle_fails_open_when_the_cache_is_down(user, workspace, monkeypatch, caplog):
    class BrokenCache:
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise RedisError("connection refused")

        set = get

    monkeypatch.setattr(ApiKeyThrottle, "cache", BrokenCache())
    client = key_client(make_key(user, workspace, ["chat"]))
    assert client.get("/api/chat/sessions/").status_code == 200
    assert "Throttle api_key skipped" in caplog.text


def test_another_users_session_is_not_found_with_a_key(user, workspace):
    victim = UserFactory.create()
    theirs = ChatSession.objects.create(user=victim, workspace=workspace_personal_get(user=victim), title="private")
    client = key_client(make_key(user, workspace, ["chat"]))
    assert_error(client.get(f"/api/chat/sessions/{theirs.pk}/"), 404, "not_found")
    assert_error(client.get(f"/api/chat/sessions/{theirs.pk}/messages/"), 404, "not_found")


def test_a_key_of_workspace_a_cannot_reach_a_session_in_workspace_b(user):
    team = workspace_create(name="Team A", owner=user)
    personal = workspace_personal_get(user=user)
    # The same person's own session, but in another workspace than the key's.
    session = ChatSession.objects.create(user=user, workspace=personal, title="personal notes")
    client = key_client(make_key(user, team, ["chat"]))
    assert_error(client.get(f"/api/chat/sessions/{session.pk}/"), 404, "not_found")
    listed = client.get("/api/chat/sessions/").json()
    assert session.pk not in [s["id"] for s in listed["results"]]


# --- schema -------------------------------------------------------------------------------------


def test_the_schema_offers_the_key_scheme_only_where_keys_work(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    scheme = schema["components"]["securitySchemes"]["apiKeyAuth"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header" and scheme["name"] == "Authorization"
    paths = schema["paths"]

    def schemes(path: str, method: str) -> set[str]:
        return {name for requirement in paths[path][method].get("security", []) for name in requirement}

    assert "apiKeyAuth" in schemes("/api/chat/sessions/", "post")
    assert "apiKeyAuth" in schemes("/api/rag/documents/", "get")
    assert "apiKeyAuth" not in schemes("/api/auth/profile/", "get")
    assert "apiKeyAuth" not in schemes("/api/workspaces/{workspace_id}/api-keys/", "post")
    assert "jwtAuth" in schemes("/api/workspaces/{workspace_id}/api-keys/", "post")


def test_a_staff_members_key_never_writes_the_shared_base(staff_user):
    """Staff write the shared base with their own login only: their key, even with
    documents:write, writes its workspace and nothing else."""
    from rag.models import Document

    client = key_client(make_key(staff_user, scopes=["documents:read", "documents:write"]))
    doc = {"title": "Shared?", "content": "Written through a key."}
    for response in (
        client.post("/api/rag/documents/", {**doc, "workspace": "shared"}, format="json"),
        client.post("/api/rag/index/", {"workspace": "shared", "documents": [doc]}, format="json"),
    ):
        assert response.status_code == 403, response.content
    assert not Document.objects.exists()
    mine = client.post("/api/rag/documents/", doc, format="json")
    assert mine.status_code == 201 and mine.json()["workspace"] == workspace_personal_get(user=staff_user).pk
