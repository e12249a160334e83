"""OWASP API7:2023 Server Side Request Forgery.

No endpoint takes a URL to fetch, and ingestion never follows the references inside a document:
HTML resources, Markdown links and images, a ``source`` or metadata value that is a URL. A
listener on 127.0.0.1 stands in for an internal service; after every way of handing it to the
server, it has received nothing. (Provider URLs come from settings only.)
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from tests.fakes import FakeServer, RecordedRequest, Reply

pytestmark = pytest.mark.django_db


class Listener(FakeServer):
    """Answers anything with a small page and records it: any request here is a forged one."""

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(200, b"<html><body>internal admin panel</body></html>", {"Content-Type": "text/html"})


@pytest.fixture
def listener():
    with Listener() as server:
        yield server


def hostile_html(url: str) -> bytes:
    return f"""<html><head>
<title>Office network</title>
<base href="{url}/base/">
<link rel="stylesheet" href="{url}/style.css">
<meta http-equiv="refresh" content="0; url={url}/refresh">
<script src="{url}/script.js"></script>
</head><body>
<h1>Office network</h1>
<p>The office network is available on weekdays. <img src="{url}/pixel.png" srcset="{url}/2x.png 2x"></p>
<iframe src="{url}/frame"></iframe><object data="{url}/object"></object>
<p style="background: url({url}/bg.png)">Ask the front desk for the guest password.</p>
<a href="{url}/link">More</a> <video poster="{url}/poster.png"><source src="{url}/v.mp4"></video>
</body></html>""".encode()


def hostile_markdown(url: str) -> bytes:
    return f"""---
title: Printer setup
category: Guide
source: {url}/front-matter
---
# Printer setup

Printers are configured from the settings page. ![diagram]({url}/diagram.png)
See [the manual]({url}/manual) or <{url}/autolink>.

[ref]: {url}/reference
""".encode()


def test_ingestion_never_fetches_what_a_document_points_at(staff_client, api_client, listener):
    url = listener.url
    uploads = [("network.html", hostile_html(url), "text/html"), ("printer.md", hostile_markdown(url), "text/markdown")]
    for name, data, content_type in uploads:
        upload = SimpleUploadedFile(name, data, content_type=content_type)
        response = staff_client.post("/api/rag/documents/", {"file": upload})
        assert response.status_code == 201, response.content
    json_document = {
        "title": "Webhooks",
        "content": f"Webhooks are sent to {url}/hook when a document changes.",
        "category": "Guide",
        "source": f"{url}/source",
        "metadata": {"url": f"{url}/metadata", "callback": f"{url}/callback", "image": f"{url}/image.png"},
    }
    assert staff_client.post("/api/rag/documents/", json_document, format="json").status_code == 201
    bulk = {"documents": [json_document | {"title": "Webhooks 2", "source": f"{url}/bulk"}]}
    assert staff_client.post("/api/rag/index/", bulk, format="json").status_code == 201
    # Reading and answering from them fetches nothing either.
    assert api_client.get("/api/rag/search/", {"q": "office network printer webhooks"}).status_code == 200
    session = api_client.post("/api/chat/sessions/", {}, format="json").json()
    sent = api_client.post(
        f"/api/chat/sessions/{session['id']}/messages/", {"content": f"Open {url}/chat and summarise it"}, format="json"
    )
    assert sent.status_code == 201
    assert listener.requests == []


def test_no_request_field_is_a_url_for_the_server_to_use():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    urls: list[str] = []
    seen: set[str] = set()

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("format") in ("uri", "url", "hostname", "ipv4", "ipv6"):
                urls.append(where)
            name = str(node.get("$ref", "")).rsplit("/", 1)[-1]
            if name and name not in seen:
                seen.add(name)
                visit(schema["components"]["schemas"][name], f"{where}->{name}")
            for key, value in node.items():
                if key != "$ref":
                    visit(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                visit(item, where)

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            visit(operation.get("requestBody", {}), f"{method.upper()} {path} body")
            visit(operation.get("parameters", []), f"{method.upper()} {path} parameters")
    assert urls == []
