"""Deeply nested JSON is a 400 on every endpoint that reads a JSON body (issue 13, item 12): Python's
decoder gives up on about a thousand levels with a RecursionError, which was a 500 everywhere."""

from __future__ import annotations

import json

import pytest

from background_tasks.jobs import JOBS
from chat.models import ChatMessage, ChatSession
from rag.models import Document
from tests.factories import UserFactory
from tests.security.routes import all_routes
from users.models import User
from utils.parsers import MAX_JSON_DEPTH, json_depth_exceeds
from workspaces.models import Membership
from workspaces.services import workspace_create, workspace_personal_get

pytestmark = pytest.mark.django_db

BODY_METHODS = {"POST", "PATCH", "PUT"}
# Views that take a body-less POST and never read what is sent: a deep body is simply ignored.
IGNORE_THE_BODY = {"users:verify-email-link", "users:logout-all", "workspaces:leave"}


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def api_body_routes() -> dict[str, set[str]]:
    return {
        r.name: set(r.methods & BODY_METHODS)
        for r in all_routes()
        if r.pattern.startswith("api/") and r.methods & BODY_METHODS
    }


def object_urls(staff: User) -> dict[str, str]:
    """A URL for each route with an object in its path, naming an object the staff user may write."""
    session = ChatSession.objects.create(user=staff, workspace=workspace_personal_get(user=staff), title="mine")
    bot = ChatMessage.objects.create(session=session, sender="bot", content="an answer", metadata={})
    document = Document.objects.create(title="Doc", content="Text.", category="Other")
    team = workspace_create(name="Team", owner=staff)
    member = UserFactory.create()
    Membership.objects.create(workspace=team, user=member)
    return {
        "users:verify-email-link": "/api/auth/verify-email/some-token/",
        "rag:document-detail": f"/api/rag/documents/{document.pk}/",
        "chat:session-detail": f"/api/chat/sessions/{session.pk}/",
        "chat:session-messages": f"/api/chat/sessions/{session.pk}/messages/",
        "chat:message-feedback": f"/api/chat/messages/{bot.pk}/feedback/",
        "background_tasks:job-run": f"/api/ops/jobs/{next(iter(JOBS))}/run/",
        "workspaces:workspace-detail": f"/api/workspaces/{team.pk}/",
        "workspaces:member-detail": f"/api/workspaces/{team.pk}/members/{member.pk}/",
        "workspaces:invitations": f"/api/workspaces/{team.pk}/invitations/",
        "workspaces:leave": f"/api/workspaces/{team.pk}/leave/",
        "api_keys:list": f"/api/workspaces/{workspace_personal_get(user=staff).pk}/api-keys/",
    }


def test_every_route_with_an_object_and_a_body_has_a_url(staff_user):
    """Without a real object the test below would only see a 404 before the body is read."""
    routes = {
        r.name for r in all_routes() if r.pattern.startswith("api/") and r.parameters and r.methods & BODY_METHODS
    }
    assert routes == set(object_urls(staff_user))


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(staff_user, staff_client, levels):
    urls = object_urls(staff_user)
    body = nested(levels)
    checked = set()
    # The body-less ones last: logging out everywhere revokes the staff client's token.
    for route in sorted(all_routes(), key=lambda r: r.name in IGNORE_THE_BODY):
        if not route.pattern.startswith("api/") or not route.methods & BODY_METHODS:
            continue
        # Staff credentials take every view past authentication; the anonymous flows ignore them.
        url = urls.get(route.name) or route.url()
        for method in sorted(route.methods & BODY_METHODS):
            response = getattr(staff_client, method.lower())(url, data=body, content_type="application/json")
            if route.name in IGNORE_THE_BODY:
                assert response.status_code < 500, (route.name, method, response.status_code)
                continue
            assert response.status_code == 400, (route.name, method, response.status_code, response.content[:200])
            assert response.json()["code"] == "parse_error", (route.name, method)
            checked.add(route.name)
    assert len(checked) >= 15  # the control: the walk reached the JSON endpoints


def test_the_depth_bound_counts_arrays_and_objects():
    assert not json_depth_exceeds(json.loads(nested(MAX_JSON_DEPTH)))
    assert json_depth_exceeds(json.loads(nested(MAX_JSON_DEPTH + 1)))
    assert json_depth_exceeds(json.loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)))
    assert not json_depth_exceeds({"documents": [{"title": "t", "metadata": {"tags": ["a", "b"]}}]})
