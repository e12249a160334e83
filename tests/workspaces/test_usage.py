"""``GET /api/usage/``: a user's own messages and tokens; to owners and admins, their workspaces'
documents, bytes, messages, tokens and limits; counted by UTC day and month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rag.models import Document
from tests.factories import BotMessageFactory, ChatMessageFactory, ChatSessionFactory, UserFactory
from workspaces.models import Membership
from workspaces.services import workspace_create, workspace_personal_get
from workspaces.usage import Period, usage_for

pytestmark = pytest.mark.django_db

USAGE = "/api/usage/"
NOW = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
EARLIER_THIS_MONTH = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LAST_MONTH = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)


def exchange(session: Any, when: datetime, tokens: int | None) -> None:
    """A question and its answer at ``when``; the answer used ``tokens`` (None: not reported)."""
    ChatMessageFactory.create(session=session, created_at=when)
    usage = None if tokens is None else {"prompt_tokens": tokens - 1, "completion_tokens": 1, "total_tokens": tokens}
    BotMessageFactory.create(session=session, created_at=when, metadata={"sources": [], "usage": usage})


@pytest.fixture
def world() -> dict[str, Any]:
    owner, member = UserFactory.create(username="olga"), UserFactory.create(username="mo")
    workspace_personal_get(user=member)  # registration makes it; the factory does not
    team = workspace_create(name="Team", owner=owner)
    Membership.objects.create(workspace=team, user=member, role=Membership.Role.MEMBER)
    Document.objects.create(workspace=team, title="A", content="héllo", content_hash="a")  # 6 bytes in UTF-8
    Document.objects.create(workspace=team, title="B", content="world ✓", content_hash="b")  # 9 bytes
    Document.objects.create(workspace=None, title="Shared", content="not the team's", content_hash="c")
    olga_team = ChatSessionFactory.create(user=owner, workspace=team)
    mo_team = ChatSessionFactory.create(user=member, workspace=team)
    olga_personal = ChatSessionFactory.create(user=owner, workspace=workspace_personal_get(user=owner))
    exchange(olga_team, NOW - timedelta(hours=1), 100)
    exchange(olga_team, EARLIER_THIS_MONTH, 50)
    exchange(olga_team, LAST_MONTH, 1000)
    exchange(mo_team, NOW - timedelta(hours=2), 30)
    exchange(mo_team, NOW - timedelta(hours=3), None)  # the extractive answerer reports no usage
    exchange(olga_personal, NOW - timedelta(minutes=5), 7)
    return {"owner": owner, "member": member, "team": team}


def test_an_owner_sees_their_own_usage_and_their_workspaces(world):
    usage = usage_for(user=world["owner"], now=NOW)

    assert usage["today"].isoformat() == "2026-12-06" and usage["month_start"].isoformat() == "2026-12-01"
    assert usage["user"] == {
        "messages_today": 2,
        "messages_month": 3,
        "tokens_today": 107,
        "tokens_month": 157,
        "max_messages_per_day": 500,
    }
    personal, team = sorted(usage["workspaces"], key=lambda w: w["id"] != world["team"].pk, reverse=True)
    assert team["id"] == world["team"].pk and team["role"] == "owner"
    assert team["documents"] == 2 and team["bytes"] == 15
    assert (team["messages_today"], team["messages_month"]) == (3, 4)
    assert (team["tokens_today"], team["tokens_month"]) == (130, 180)
    assert team["limits"] == {"max_documents": 200, "max_bytes": 50 * 1024 * 1024, "max_messages_per_day": 2000}
    assert personal["documents"] == 0 and personal["messages_today"] == 1 and personal["tokens_month"] == 7


def test_a_member_sees_only_their_own_numbers(world, client_for):
    response = client_for(world["member"]).get(USAGE)

    assert response.status_code == 200
    body = response.json()
    assert [w["name"] for w in body["workspaces"]] == ["mo's workspace"]  # their personal one, not the team
    assert world["team"].pk not in [w["id"] for w in body["workspaces"]]


def test_an_admin_sees_the_workspace(world, client_for):
    Membership.objects.filter(user=world["member"]).exclude(workspace__personal_owner=world["member"]).update(
        role=Membership.Role.ADMIN
    )
    body = client_for(world["member"]).get(USAGE).json()
    assert {w["name"]: w["role"] for w in body["workspaces"]} == {"mo's workspace": "owner", "Team": "admin"}


def test_the_figures_are_a_few_aggregate_queries_whatever_the_workspaces(world):
    for n in range(5):
        workspace = workspace_create(name=f"Extra {n}", owner=world["owner"])
        exchange(ChatSessionFactory.create(user=world["owner"], workspace=workspace), NOW, 1)
    with CaptureQueriesContext(connection) as queries:
        usage = usage_for(user=world["owner"], now=NOW)
    assert len(usage["workspaces"]) == 7
    assert len(queries) == 4  # memberships, the user's figures, messages per workspace, documents per workspace


def test_periods_are_utc_days_and_months():
    period = Period.of(datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
    assert period.day_start == period.month_start == datetime(2026, 12, 1, tzinfo=UTC)


def test_usage_needs_a_signed_in_caller(anon_client):
    assert anon_client.get(USAGE).status_code == 401


def test_a_new_user_has_zero_usage(user, api_client):
    body = api_client.get(USAGE).json()
    assert body["user"] == {
        "messages_today": 0,
        "messages_month": 0,
        "tokens_today": 0,
        "tokens_month": 0,
        "max_messages_per_day": 500,
    }
    assert body["workspaces"] == []  # no personal workspace made yet, nothing managed


def test_a_managed_workspace_without_activity_shows_zeros_and_its_limits(user, api_client):
    workspace_create(name="Quiet", owner=user)
    [quiet] = api_client.get(USAGE).json()["workspaces"]
    assert quiet["name"] == "Quiet" and quiet["role"] == "owner"
    assert [quiet[k] for k in ("documents", "bytes", "messages_today", "messages_month", "tokens_month")] == [0] * 5
    assert quiet["limits"]["max_documents"] == 200
