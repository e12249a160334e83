"""PostgreSQL refusing connections while the service runs: a real gunicorn process (one worker, one
thread, so its one persistent database connection is reused from request to request) whose
``DATABASE_URL`` points at a TCP proxy in front of PostgreSQL, which the test cuts and restores.

While the database is away every API request is a 503 in the error envelope (never a 500, an HTML
page or a traceback), health says ``database``; once it is back the very next request succeeds on
the same process: Django drops the broken connection (``CONN_HEALTH_CHECKS``) and reconnects. No
message stored before the outage is lost, and a message refused during it is stored once when sent
again.

Runs against the PostgreSQL of ``DATABASE_URL`` when that is PostgreSQL, else 127.0.0.1:5432; it
is skipped only when that server is unreachable outside CI (``CI`` unset).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from tests.fakes import unused_port
from tests.faults.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cure-Passphrase-42"
DOWN = {"detail": "The database is unavailable; try again shortly.", "code": "database_unavailable"}


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str, *, port: int | None = None, host: str | None = None) -> str:
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgres://{auth}@{host or self.host}:{port or self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=3)


def postgres_server() -> Postgres:
    """The suite's PostgreSQL when it runs on one, else the local default; skipped when unreachable
    outside CI."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        server = Postgres(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432), db["USER"] or "postgres", db["PASSWORD"])
    else:
        server = Postgres("127.0.0.1", 5432, "postgres", "")
    try:
        server.admin().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {server.host}:{server.port} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL at {server.host}:{server.port} is unreachable: {exc}")
    return server


@dataclass
class Service:
    url: str
    proxy: TcpProxy
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _server_env(database_url: str, var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "RAG_", "MISTRAL_", "PINECONE_", "OPENAI_", "GUNICORN_"))
    }
    env.update(
        DATABASE_URL=database_url,
        USE_FAKE_REDIS="true",
        DEBUG="false",
        SECRET_KEY=os.environ.get("SECRET_KEY") or "faults-only-secret-key-0123456789-abcdefghijklmnop",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        REQUIRE_EMAIL_VERIFICATION="false",
        VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="1",  # one thread: its one connection must survive the outage or be replaced
        GUNICORN_ACCESS_LOG="-",
        PYTHONUNBUFFERED="1",
    )
    return env


def _serving(process: subprocess.Popen[bytes], log: Path, port: int, timeout_s: float = 60) -> bool:
    """Wait until this gunicorn listens on ``port`` and answers; False if the port was taken."""
    deadline = time.monotonic() + timeout_s
    listening = f"Listening at: http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        output = log.read_text(errors="replace")
        if process.poll() is not None:
            if "Connection in use" in output:  # another process took the free port first
                return False
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{output[-4000:]}")
        if listening in output:  # ours, not whatever else might listen on that port
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2)
                return True
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer within {timeout_s} s:\n{log.read_text(errors='replace')[-4000:]}")


def _start_gunicorn(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--log-level", "info", "config.wsgi"]
    for _ in range(3):
        port = unused_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, stdout=out, stderr=out
            )
        if _serving(process, log, port):
            return process, f"http://127.0.0.1:{port}"
        process.wait()
    pytest.fail("gunicorn found no free port in three attempts")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A migrated database of its own, a proxy in front of PostgreSQL, and gunicorn behind the proxy."""
    pg = postgres_server()
    name = f"ragchat_faults_{os.getpid()}"
    with pg.admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    tmp = tmp_path_factory.mktemp("db-outage")
    proxy = TcpProxy(pg.host, pg.port).start()
    env = _server_env(pg.url(name, host="127.0.0.1", port=proxy.port), tmp / "var")
    log = tmp / "gunicorn.log"
    try:
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, timeout=300
        )
        assert migrate.returncode == 0, migrate.stderr.decode()[-4000:]
        process, url = _start_gunicorn(env, log)
        try:
            yield Service(url, proxy, process, log)
        finally:
            _stop(process)
    finally:
        proxy.stop()
        with pg.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    service.proxy.restore()
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client
    service.proxy.restore()


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json", response.text
    assert response.json() == DOWN


def sign_up(api: httpx.Client, username: str) -> dict[str, str]:
    created = api.post(
        "/api/auth/register/", json={"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    logged_in = api.post("/api/auth/login/", json={"username": username, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
    return logged_in.json()


@pytest.mark.parametrize("outage", ["refuse", "drop"])
def test_requests_are_503_while_the_database_is_away_and_succeed_again_without_a_restart(service, api, outage):
    tokens = sign_up(api, f"outage_{outage}")
    auth = {"Authorization": f"Bearer {tokens['access']}"}
    session = api.post("/api/chat/sessions/", json={}, headers=auth).json()
    messages = f"/api/chat/sessions/{session['id']}/messages/"
    first = api.post(messages, json={"content": "What is an AI chatbot?"}, headers=auth)
    assert first.status_code == 201, first.text

    getattr(service.proxy, outage)()  # also cuts the worker's open connection

    assert_database_unavailable(api.get("/api/auth/profile/", headers=auth))  # the JWT user lookup
    assert_database_unavailable(
        api.post("/api/auth/login/", json={"username": f"outage_{outage}", "password": PASSWORD})
    )
    assert_database_unavailable(api.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]}))
    second = {"content": "How do I reset my password?"}
    retry_key = {**auth, "Idempotency-Key": f"outage-{outage}"}
    assert_database_unavailable(api.post(messages, json=second, headers=retry_key))
    assert_database_unavailable(api.get("/api/chat/history/", headers=auth))
    health = api.get("/api/health/")
    assert health.status_code == 503 and "database" in health.json()["down"]
    # Before DRF: with a session cookie, Django's session middleware reads the database itself.
    with httpx.Client(base_url=service.url, cookies={"sessionid": "x" * 32}, timeout=30) as browser:
        assert_database_unavailable(browser.get("/admin/"))
    assert service.process.poll() is None, service.output()

    service.proxy.restore()

    profile = api.get("/api/auth/profile/", headers=auth)  # the first request after the outage
    assert profile.status_code == 200, profile.text
    assert api.get("/api/health/").status_code == 200
    sent = api.post(messages, json=second, headers=retry_key)
    assert sent.status_code == 201, sent.text
    assert api.post(messages, json=second, headers=retry_key).json() == sent.json()  # a replay stores nothing
    history = api.get(messages, headers=auth).json()["results"]
    assert [(m["sender"], m["content"]) for m in history] == [
        ("user", "What is an AI chatbot?"),
        ("bot", first.json()["bot_message"]["content"]),
        ("user", "How do I reset my password?"),
        ("bot", sent.json()["bot_message"]["content"]),
    ]
    refreshed = api.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.django_db
def test_a_database_error_met_before_drf_is_a_503_in_the_envelope(client, monkeypatch):
    """The same as above without PostgreSQL: Django's own error path, not DRF's, renders it."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import OperationalError

    def unreachable(self: Any) -> dict[str, Any]:
        raise OperationalError("connection refused")

    monkeypatch.setattr(SessionStore, "load", unreachable)
    client.raise_request_exception = False
    client.cookies["sessionid"] = "x" * 32
    response = client.get("/admin/")
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response.json() == DOWN
