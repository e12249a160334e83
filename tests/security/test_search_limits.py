"""Issue 13, item 7: search is throttled per user, and what a search leaves in Redis (its query
embedding) is bounded: it expires within the hour by default, and a flood stores no more entries
than the throttle lets through."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from tests.factories import UserFactory
from utils.redis import get_redis

SEARCH = "/api/rag/search/"


@pytest.fixture
def search_rate(settings: Any):
    def set_rate(rate: str) -> None:
        current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, "search": rate}}

    return set_rate


def cached_query_embeddings() -> list[str]:
    pattern = cache.make_key("rag:qemb:*")
    return [key.decode() for key in get_redis().scan_iter(match=pattern)]


def test_the_documented_defaults():
    assert django_settings.THROTTLE_RATES["search"] == "60/min"
    assert django_settings.RAG_EMBED_CACHE_SECONDS == 3600


def test_search_is_throttled_per_user(api_client, client_for, knowledge_base, search_rate):
    search_rate("3/min")
    statuses = [api_client.get(SEARCH, {"q": f"reset my password {n}"}).status_code for n in range(3)]
    assert statuses == [200, 200, 200]
    response = api_client.get(SEARCH, {"q": "reset my password again"})
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60
    # One user's flood is not another's problem.
    assert client_for(UserFactory.create()).get(SEARCH, {"q": "reset my password"}).status_code == 200


def test_a_search_flood_leaves_a_bounded_number_of_entries_that_expire(api_client, knowledge_base, search_rate):
    search_rate("5/min")
    for n in range(40):  # distinct queries: each one that ran would cache its own embedding
        api_client.get(SEARCH, {"q": f"how do I verify my email address, attempt {n}"})
    keys = cached_query_embeddings()
    assert 0 < len(keys) <= 5
    for key in keys:
        assert 0 < get_redis().ttl(key) <= django_settings.RAG_EMBED_CACHE_SECONDS <= 3600


def test_a_flood_of_follow_ups_leaves_at_most_two_entries_a_search(api_client, knowledge_base, search_rate):
    search_rate("5/min")
    for n in range(40):  # a new question and a new previous question each time
        api_client.get(SEARCH, {"q": f"and does it expire, attempt {n}?", "previous": f"verify my email {n}"})
    assert 5 < len(cached_query_embeddings()) <= 10
