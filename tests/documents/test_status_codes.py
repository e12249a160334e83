"""The help centre (documents/) promises only status codes the API answers.

Each article that documents endpoints is mapped to them; every status code it mentions must be a
response the OpenAPI schema documents for those endpoints (the schema itself is checked against the
code by schema fuzzing), plus the few every endpoint can answer. General articles may mention any
status the API documents somewhere. The behaviours behind the claims a reader acts on are checked
by requests at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ROOT / "documents"
SCHEMA = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())

HTTP_STATUSES = {200, 201, 202, 204, 205, 400, 401, 403, 404, 405, 409, 413, 414, 415, 429, 500, 503}
# A status in prose: not an id ("id": 311), a path segment, a version or a quantity ("500 messages").
STATUS = re.compile(
    r"(?<![\w/.\"#:-])(?<!\"id\": )(?<!message )([2-5]\d\d)(?![\w/.-])"
    r"(?!\s*(?:chat )?(?:messages|characters|per|MB|KB|ms|seconds|requests|tokens|days|%))"
)
# Every endpoint may also answer these: a method it does not have, a server error.
ANY_ENDPOINT = {405, 500}

# Articles about particular endpoints -> those endpoints (schema paths).
ARTICLE_ENDPOINTS: dict[str, list[str]] = {
    "api/access-and-refresh-tokens.md": ["/api/auth/login/", "/api/auth/token/refresh/", "/api/auth/logout/"],
    "api/health-check-endpoint.md": ["/api/health/"],
    "api/idempotency-keys.md": ["/api/chat/sessions/{session_id}/messages/"],
    "api/interactive-api-documentation.md": ["/api/auth/login/", "/api/auth/profile/"],
    "api/limits-and-throttling.md": ["/api/chat/sessions/{session_id}/messages/", "/api/auth/login/"],
    "faq/degraded-answers.md": ["/api/chat/sessions/{session_id}/messages/"],
    "faq/when-the-assistant-does-not-know.md": ["/api/chat/sessions/{session_id}/messages/"],
    "guides/browse-chat-history.md": ["/api/chat/history/", "/api/chat/sessions/{session_id}/messages/"],
    "guides/change-your-password.md": ["/api/auth/password/change/"],
    "guides/create-an-account.md": ["/api/auth/register/"],
    "guides/export-a-conversation.md": ["/api/chat/sessions/{session_id}/export/"],
    "guides/log-in.md": ["/api/auth/login/", "/api/auth/token/refresh/"],
    "guides/log-out-and-sign-out-everywhere.md": ["/api/auth/logout/", "/api/auth/logout-all/"],
    "guides/manage-chat-sessions.md": ["/api/chat/sessions/", "/api/chat/sessions/{session_id}/"],
    "guides/manage-the-knowledge-base.md": [
        "/api/rag/documents/",
        "/api/rag/documents/{document_id}/",
        "/api/rag/index/",
        "/api/rag/categories/",
    ],
    "guides/rate-an-answer.md": ["/api/chat/messages/{message_id}/feedback/"],
    "guides/reset-a-forgotten-password.md": ["/api/auth/password/reset/", "/api/auth/password/reset/confirm/"],
    "guides/scheduled-maintenance-jobs.md": ["/api/ops/jobs/", "/api/ops/jobs/{job_id}/run/"],
    "guides/search-the-knowledge-base.md": ["/api/rag/search/"],
    "guides/send-a-message.md": ["/api/chat/sessions/{session_id}/messages/"],
    "guides/stream-answers-in-real-time.md": ["/api/chat/sessions/{session_id}/messages/"],
    "guides/verify-your-email-address.md": [
        "/api/auth/verify-email/",
        "/api/auth/verify-email/{token}/",
        "/api/auth/resend-verification/",
        "/api/auth/login/",
    ],
    "guides/view-and-update-your-profile.md": ["/api/auth/profile/"],
}
# Articles about the API as a whole, or about policies.
GENERAL_ARTICLES = {
    "api/api-overview.md",
    "api/error-responses-and-status-codes.md",
    "faq/glossary.md",
    "faq/troubleshooting-common-errors.md",
    "guides/quickstart-first-question.md",
    "guides/self-hosting-overview.md",
    "policies/deleting-your-data.md",
    "policies/security-practices.md",
}


def documented(paths: list[str]) -> set[int]:
    statuses: set[int] = set()
    for path in paths:
        for operation in SCHEMA["paths"][path].values():
            if isinstance(operation, dict) and "responses" in operation:
                statuses |= {int(code) for code in operation["responses"] if code.isdigit()}
    return statuses


def mentioned(article: str) -> set[int]:
    text = (DOCUMENTS / article).read_text()
    return {int(code) for code in STATUS.findall(text)} & HTTP_STATUSES


ARTICLES = sorted(p.relative_to(DOCUMENTS).as_posix() for p in DOCUMENTS.rglob("*.md"))


def test_every_article_that_mentions_a_status_is_classified():
    unclassified = [a for a in ARTICLES if mentioned(a) and a not in ARTICLE_ENDPOINTS and a not in GENERAL_ARTICLES]
    assert unclassified == [], "map these articles to their endpoints in ARTICLE_ENDPOINTS (or GENERAL_ARTICLES)"
    assert set(ARTICLE_ENDPOINTS) | GENERAL_ARTICLES <= set(ARTICLES)


@pytest.mark.parametrize("article", sorted(ARTICLE_ENDPOINTS))
def test_an_article_promises_only_what_its_endpoints_answer(article):
    paths = ARTICLE_ENDPOINTS[article]
    assert set(paths) <= set(SCHEMA["paths"]), f"{article}: unknown endpoint"
    promised = mentioned(article) - documented(paths) - ANY_ENDPOINT
    assert promised == set(), f"{article} mentions {sorted(promised)}, which {paths} never answer"


@pytest.mark.parametrize("article", sorted(GENERAL_ARTICLES))
def test_a_general_article_mentions_only_statuses_the_api_has(article):
    every = documented(list(SCHEMA["paths"])) | ANY_ENDPOINT
    assert mentioned(article) - every == set()


# --- the claims a reader acts on, checked against the running code ---------------------------------


def quoted(article: str, phrase: str) -> None:
    text = " ".join((DOCUMENTS / article).read_text().split())
    assert phrase in text, f"{article} no longer says {phrase!r}: update this test with it"


@pytest.mark.django_db
def test_export_in_an_unknown_format_is_404(api_client):
    quoted("guides/export-a-conversation.md", "Any value other than `json` or `md` answers **404**")
    session = api_client.post("/api/chat/sessions/", {}, format="json").json()["id"]
    response = api_client.get(f"/api/chat/sessions/{session}/export/?format=pdf")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_profile_put_is_405(api_client):
    quoted("guides/view-and-update-your-profile.md", "**405**: you tried `PUT`, `POST` or `DELETE`")
    for method in ("put", "post", "delete"):
        assert getattr(api_client, method)("/api/auth/profile/", {}, format="json").status_code == 405


@pytest.mark.django_db
def test_message_cursors_take_a_window_and_refuse_non_numbers(api_client):
    quoted("guides/browse-chat-history.md", "Both together bound a window")
    session = api_client.post("/api/chat/sessions/", {}, format="json").json()["id"]
    url = f"/api/chat/sessions/{session}/messages/"
    assert api_client.get(url, {"after": 1, "before": 9}).status_code == 200
    quoted("guides/browse-chat-history.md", "A cursor that is not a whole number of zero or more is refused with 400")
    assert api_client.get(url, {"after": "x"}).status_code == 400
    assert api_client.get(url, {"before": -1}).status_code == 400


@pytest.mark.django_db
def test_history_takes_no_cursor(api_client):
    quoted("guides/browse-chat-history.md", "it takes no parameters")
    assert "parameters" not in SCHEMA["paths"]["/api/chat/history/"]["get"]


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_413(staff_client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    quoted("guides/manage-the-knowledge-base.md", "Larger files are refused with **413** and the code `file_too_large`")
    settings.MAX_UPLOAD_BYTES = 100
    upload = SimpleUploadedFile("big.md", b"x" * 200)
    response = staff_client.post("/api/rag/documents/", {"file": upload}, format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"


@pytest.mark.django_db
def test_a_used_link_of_a_verified_account_says_already_verified(anon_client):
    from tests.factories import UserFactory
    from users.models import AccountToken
    from users.services import account_token_issue, email_verify

    quoted("guides/verify-your-email-address.md", "the code `already_verified`")
    user = UserFactory.create(is_verified=False)
    token = account_token_issue(user=user, purpose=AccountToken.Purpose.VERIFY_EMAIL)
    email_verify(raw_token=token)
    response = anon_client.get(f"/api/auth/verify-email/{token}/")
    assert response.status_code == 400 and response.json()["code"] == "already_verified"
    assert AccountToken.objects.filter(user=user).count() == 1
