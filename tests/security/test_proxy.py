"""Issue 13 item 1: slowloris, and the proxy in front of gunicorn.

8 connections each sending a header line every 3 s stopped the 2x4 server from serving anyone; 3
did it on the SQLite sizing. `make serve` now puts nginx (deploy/nginx.conf.template) in front of
gunicorn: it reads whole requests with timeouts before gunicorn sees them, and answers its own
errors in the API's JSON envelope. These tests start the real processes on free ports of
127.0.0.1 (nginx is Debian's: skipped without it, failed on CI). The one timing requirement is
the issue's own: health p95 under 1 s over 20 requests while 50 connections trickle; the control
shows the same measurement fails against gunicorn alone.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security import proxy_stack
from tests.security.proxy_stack import Stack, Trickle, health_latencies, running_stack
from utils.stats import percentile

TRICKLERS = 50


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    proxy_stack.nginx_binary()
    with running_stack(tmp_path_factory.mktemp("proxied"), proxy=True) as running:
        yield running


def test_fifty_trickling_connections_do_not_stop_others_being_served(stack):
    trickle = Trickle(stack.port, TRICKLERS)
    try:
        latencies = health_latencies(stack.base, count=20, timeout_s=5.0)
    finally:
        trickle.close()
    assert trickle.lines_sent >= TRICKLERS  # the attack ran while health was measured
    p95 = percentile(latencies, 95)
    assert p95 is not None and p95 < 1.0, latencies


def test_control_the_same_trickle_stops_gunicorn_alone(tmp_path):
    """Without the proxy the same measurement fails: the test above can fail."""
    with running_stack(tmp_path, proxy=False) as alone:
        assert health_latencies(alone.base, count=3, timeout_s=5.0)[-1] < 5.0  # it serves at first
        trickle = Trickle(alone.port, TRICKLERS)
        try:
            latencies = health_latencies(alone.base, count=5, timeout_s=2.0)
        finally:
            trickle.close()
    p95 = percentile(latencies, 95)
    assert p95 is not None and p95 >= 1.0, latencies


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == code and body["detail"]
    return body


def test_limits_answered_in_the_json_envelope(stack):
    envelope(httpx.get(f"{stack.base}/api/health/?q={'a' * 9000}"), 414, "uri_too_long")
    envelope(httpx.get(f"{stack.base}/api/health/", headers={"X-Big": "a" * 9000}), 431, "headers_too_large")
    body = b"{" + b" " * (10 * 1024 * 1024 + 64 * 1024) + b"}"
    big = httpx.post(f"{stack.base}/api/auth/login/", content=body, headers={"Content-Type": "application/json"})
    envelope(big, 413, "request_too_large")
    raw = raw_request(stack.port, b"NONSENSE\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400") and b'"code":"bad_request"' in raw


def test_what_gunicorn_would_refuse_in_plain_text_reaches_the_application(stack):
    # 150 header lines: over gunicorn's default of 100 (a plain-text 431 from gunicorn alone),
    # within nginx's size limits; the proxied gunicorn takes them and the application answers.
    headers = {f"X-Extra-{n}": "1" for n in range(150)}
    assert httpx.get(f"{stack.base}/api/health/", headers=headers).status_code == 200
    # The application's own errors pass through unchanged (not replaced by the proxy's).
    body = b"{" + b" " * 3_000_000 + b"}"
    refused = httpx.post(f"{stack.base}/api/auth/login/", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413 and refused.json()["detail"] == "The request body is too large."


def test_a_down_application_is_a_json_502(tmp_path):
    nginx = proxy_stack.nginx_binary()
    port = proxy_stack.free_port()
    upstream = f"unix:{tmp_path / 'nobody.sock'}"
    conf = proxy_stack.nginx_conf.render(f"127.0.0.1:{port}", upstream, tmp_path / "nginx")
    process = subprocess.Popen([nginx, "-e", "stderr", "-p", str(tmp_path / "nginx"), "-c", str(conf)])
    try:
        for _ in range(100):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        envelope(response, 502, "bad_gateway")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_rendered_config_buffers_requests_with_the_applications_limits(tmp_path, settings):
    conf = proxy_stack.nginx_conf.render("127.0.0.1:1", "unix:/tmp/x.sock", tmp_path).read_text()
    assert "proxy_request_buffering on;" in conf
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive"):
        assert f"{directive} " in conf
    assert f"client_max_body_size {settings.MAX_UPLOAD_BYTES + 64 * 1024};" in conf
    for status in (413, 414, 431, 502, 504):
        assert f"/_proxy_errors/{status}.json" in conf
    assert "@" not in "".join(line.split("#")[0] for line in conf.splitlines())
    assert Path(proxy_stack.ROOT / "deploy" / "nginx.conf.template").is_file()
