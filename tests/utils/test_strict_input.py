"""The API accepts what its OpenAPI schema says and refuses the rest (what scripts/fuzz.sh checks
at scale): strict field types, query parameters read once and in full, the published patterns."""

from __future__ import annotations

import jsonschema_rs
import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from chat.serializers import FeedbackSerializer, SendInputSerializer
from utils.serializers import (
    NO_NUL_PATTERN,
    NOT_BLANK_PATTERN,
    QueryIntegerField,
    StrictBooleanField,
    StrictCharField,
)

SESSIONS = "/api/chat/sessions/"


class _Query(serializers.Serializer):
    n = QueryIntegerField(required=False)


class _Body(serializers.Serializer):
    text = StrictCharField(max_length=200)
    flag = StrictBooleanField(required=False)


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ({"text": "hello"}, True),
        ({"text": 5}, False),
        ({"text": True}, False),
        ({"text": "a\x00b"}, False),
        ({"text": " \t\n"}, False),
        ({"text": "\n" + "x" * 200}, False),  # 201 characters as sent, though 200 once trimmed
        ({"text": "ok", "flag": True}, True),
        ({"text": "ok", "flag": "true"}, False),
        ({"text": "ok", "flag": 1}, False),
    ],
)
def test_body_fields_take_only_their_json_type(data, valid):
    assert _Body(data=data).is_valid() is valid


@pytest.mark.parametrize(
    ("query", "valid"), [("n=7", True), ("n=-3", True), ("", True), ("n=1.0", False), ("n=", False), ("n=١", False)]
)
def test_query_integer_is_digits_only(rf, query, valid):
    assert _Query(data=rf.get(f"/?{query}").GET).is_valid() is valid


def test_a_repeated_query_parameter_is_refused(rf):
    assert not _Query(data=rf.get("/?n=1&n=2").GET).is_valid()


def test_rating_is_the_integer_not_its_text():
    assert FeedbackSerializer(data={"rating": 1}).is_valid()
    assert not FeedbackSerializer(data={"rating": "1"}).is_valid()


_SPACES = [chr(c) for c in range(0x3001) if chr(c).isspace()]  # every one there is
_SAMPLES = ["hello", "  padded  ", "a\x00b", "\x00", "é\n", "\ufeff", *_SPACES]


@pytest.mark.parametrize("text", _SAMPLES)
def test_published_patterns_agree_with_the_server(text):
    """The schema's patterns, read as JSON Schema reads them (ECMA-262 regexes, whose \\s is not
    Python's), allow exactly what the serializer accepts."""
    not_blank = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK_PATTERN})
    no_nul = jsonschema_rs.validator_for({"type": "string", "pattern": NO_NUL_PATTERN})
    assert not_blank.is_valid(text) == SendInputSerializer(data={"content": text}).is_valid()
    assert no_nul.is_valid(text) == ("\x00" not in text and text != "")


@pytest.mark.django_db
def test_pagination_parameters_are_strict(api_client):
    api_client.post(SESSIONS, {"title": "one"}, format="json")
    for bad in ({"page_size": 0}, {"page_size": "ten"}, {"page_size": ""}, {"page_size": "1.0"}):
        assert api_client.get(SESSIONS, bad).status_code == 400, bad
    assert api_client.get(f"{SESSIONS}?page_size=1&page_size=2").status_code == 400
    for bad in ({"page": "last"}, {"page": 0}, {"page": 2}):
        assert api_client.get(SESSIONS, bad).status_code == 404, bad
    assert api_client.get(SESSIONS, {"page_size": 1000}).json()["count"] == 1  # above 100 counts as 100


@pytest.mark.django_db
def test_formats_and_partial_rename(api_client):
    session = api_client.post(SESSIONS, {"title": "Kept"}, format="json").json()
    messages = f"{SESSIONS}{session['id']}/messages/"
    assert api_client.get(messages, {"format": "sse"}).status_code == 404  # a page of messages is JSON only
    assert api_client.get(f"{SESSIONS}{session['id']}/export/?format=").status_code == 404
    assert api_client.post(SESSIONS, {"title": 5}, format="json").status_code == 400
    renamed = api_client.patch(f"{SESSIONS}{session['id']}/", {}, format="json")
    assert renamed.status_code == 200 and renamed.json()["title"] == "Kept"


def test_schema_describes_pages_errors_and_login():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths, components = schema["paths"], schema["components"]["schemas"]
    for path in ("/api/chat/sessions/", "/api/rag/documents/", "/api/ops/jobs/"):
        page = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert set(components[page.rsplit("/", 1)[1]]["properties"]) == {"count", "next", "previous", "results"}
    assert components["Error"]["properties"]["errors"]["additionalProperties"] == {}  # nested errors allowed
    login = paths["/api/auth/login/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert len(components[login.rsplit("/", 1)[1]]["oneOf"]) == 2
    documents = components["IndexDocumentsRequest"]["properties"]["documents"]
    assert (documents["minItems"], documents["maxItems"]) == (1, 100)
