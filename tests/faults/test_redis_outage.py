"""Redis going away while the service runs, on a real ``redis-server`` that the test kills (SIGKILL)
and restarts empty on the same port.

What must hold, as the README's "When Redis or the database is down" says: auth and chat keep
answering, throttles let requests through, the answer lock is skipped, a cached query embedding is
recomputed, health names the cache; the scheduler stops scheduling while it cannot hold its leader
lock and resumes by itself once Redis is back.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import EVENT_SCHEDULER_STARTED
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.test import APIClient

from background_tasks import jobs
from background_tasks.locks import RedisLock, redis_key
from background_tasks.management.commands import runscheduler
from background_tasks.management.commands.runscheduler import GracefulStop
from background_tasks.scheduler import DevScheduler, leader_lock, scheduler_create
from tests.background_tasks.conftest import IntervalJobSpec, wait_for
from tests.factories import DEFAULT_PASSWORD
from tests.faults.conftest import SESSIONS, messages_url, send, stored
from tests.faults.redis_server import RedisProcess, app_on
from users.models import User
from users.services import tokens_for

LOGIN, REFRESH, PROFILE, HEALTH = "/api/auth/login/", "/api/auth/token/refresh/", "/api/auth/profile/", "/api/health/"
LIMIT = 3  # per minute, for logins and for chat messages


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A running ``redis-server`` that the app (cache, throttles, locks, scheduler) uses."""
    server = RedisProcess().start()
    try:
        with app_on(server):
            yield server
    finally:
        server.kill()


@pytest.fixture
def tight_throttles(settings: Any) -> None:
    """Low login and chat rates, so that letting requests through is visible (set before Redis)."""
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    limited = {**rates, "login": f"{LIMIT}/min", "chat": f"{LIMIT}/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": limited}


def login(client: APIClient, user: User) -> Any:
    return client.post(LOGIN, {"username": user.username, "password": DEFAULT_PASSWORD}, format="json")


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def redis_keys(server: RedisProcess, pattern: str) -> list[bytes]:
    with server.client() as client:
        return list(client.scan_iter(match=pattern))


@pytest.mark.django_db
def test_auth_and_chat_keep_answering_while_redis_is_down_and_throttles_let_requests_through(
    tight_throttles, knowledge_base, user, redis_server, caplog
):
    anon = APIClient()
    # Up: the login throttle counts in this Redis and refuses the fourth attempt.
    assert [login(anon, user).status_code for _ in range(LIMIT)] == [200] * LIMIT
    refused = login(anon, user)
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    assert redis_keys(redis_server, "faults:*throttle_login*")
    access_before = tokens_for(user).access
    client = bearer(access_before)
    session_id = client.post(SESSIONS, {}, format="json").json()["id"]
    first = send(client, session_id, "How do I reset my password?", HTTP_IDEMPOTENCY_KEY="up-1")
    assert first.status_code == 201, first.content
    assert redis_keys(redis_server, "faults:*rag:qemb:*"), "the query embedding was not cached in this Redis"

    redis_server.kill()

    health = anon.get(HEALTH)
    assert health.status_code == 503 and health.json()["down"] == ["cache"]
    # Auth: logins are let through past the limit; refresh rotation and its blacklist live in the database.
    logins = [login(anon, user) for _ in range(LIMIT + 1)]
    assert [r.status_code for r in logins] == [200] * (LIMIT + 1)
    old_refresh = logins[-1].json()["refresh"]
    rotated = anon.post(REFRESH, {"refresh": old_refresh}, format="json")
    assert rotated.status_code == 200, rotated.content
    reused = anon.post(REFRESH, {"refresh": old_refresh}, format="json")
    assert reused.status_code == 401 and reused.json()["code"] == "token_not_valid"
    client = bearer(rotated.json()["access"])
    assert client.get(PROFILE).status_code == 200
    patched = client.patch(PROFILE, {"first_name": "Ada"}, format="json")
    assert patched.status_code == 200 and patched.json()["first_name"] == "Ada"
    # Chat: past the chat limit, with idempotency keys (the answer lock is skipped), and the
    # question whose embedding was cached (the cache read fails: it is embedded again).
    questions = ["How do I reset my password?", "How long is the verification link valid?"] + [
        f"What is an AI chatbot? ({n})" for n in range(LIMIT)
    ]
    replies = [send(client, session_id, q, HTTP_IDEMPOTENCY_KEY=f"down-{n}") for n, q in enumerate(questions)]
    assert [r.status_code for r in replies] == [201] * len(questions), replies[-1].content
    assert all(r.json()["bot_message"]["sources"] for r in replies[:2])
    replay = send(client, session_id, questions[1], HTTP_IDEMPOTENCY_KEY="down-1")
    assert replay.status_code == 201 and replay.json() == replies[1].json()
    history = client.get("/api/chat/history/")
    assert history.status_code == 200 and history.json()["total_messages"] == 2 * (1 + len(questions))
    assert client.get(messages_url(session_id)).status_code == 200
    assert stored("user", "How do I reset my password?") == 2  # once before the outage, once during
    assert all(stored("user", q) == 1 for q in questions[1:])
    assert stored("bot") == stored("user") == 1 + len(questions)
    for skipped in ("Throttle login skipped", "Throttle chat skipped", "Answer lock unavailable"):
        assert skipped in caplog.text

    redis_server.start()  # same port, empty: a replaced cache node

    assert anon.get(HEALTH).status_code == 200
    assert [login(anon, user).status_code for _ in range(LIMIT + 1)] == [200] * LIMIT + [429]
    assert bearer(access_before).get(PROFILE).status_code == 200


@pytest.mark.django_db
def test_running_a_job_by_hand_needs_redis_for_its_mutex(staff_client, redis_server):
    redis_server.kill()
    refused = staff_client.post("/api/ops/jobs/cleanup_tokens/run/", {}, format="json")
    assert refused.status_code == 503 and refused.json() == {
        "detail": "Redis, which coordinates job runs, is unavailable; try again shortly.",
        "code": "lock_unavailable",
    }
    redis_server.start()
    ran = staff_client.post("/api/ops/jobs/cleanup_tokens/run/", {}, format="json")
    assert ran.status_code == 200 and ran.json()["status"] == "succeeded", ran.content


# --- the scheduler ------------------------------------------------------------------------------

_runs: list[datetime] = []
_runs_lock = threading.Lock()


def _count_run(*, dry_run: bool = False) -> dict[str, int]:
    """Counted in memory: a count kept in Redis would vanish with it."""
    with _runs_lock:
        _runs.append(datetime.now(UTC))
        return {"run": len(_runs)}


def runs() -> int:
    with _runs_lock:
        return len(_runs)


@pytest.fixture
def every_second(monkeypatch: pytest.MonkeyPatch) -> IntervalJobSpec:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    spec = IntervalJobSpec("faults_every_second", "Counts its runs.", _count_run, "", start=start)
    monkeypatch.setattr(jobs, "JOBS", {spec.name: spec})  # the runner finds jobs by name
    with _runs_lock:
        _runs.clear()
    return spec


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_stops_while_redis_is_down_and_resumes_when_it_is_back(every_second, redis_server):
    with override_settings(SCHEDULER_LEADER_TTL_S=1):  # renewed every third of a second
        dev = DevScheduler(poll_s=0.1, specs=[every_second])
        dev.start()
        try:
            wait_for(lambda: dev.scheduler is not None and runs() >= 1, timeout_s=15)

            redis_server.kill()
            # It cannot renew its leader lock: after one TTL it stops scheduling, and keeps trying.
            wait_for(lambda: dev.scheduler is None, timeout_s=10)
            stopped_at = runs()
            assert dev._thread is not None and dev._thread.is_alive()

            redis_server.start()  # empty: the job store and the lock are gone too
            wait_for(lambda: dev.scheduler is not None, timeout_s=10)
            assert leader_lock().holder() is not None
            wait_for(lambda: runs() > stopped_at, timeout_s=15)
        finally:
            dev.stop()
    assert dev.scheduler is None and leader_lock().holder() is None


@pytest.mark.django_db(transaction=True)
def test_runscheduler_exits_when_redis_goes_away_and_its_restart_waits_for_redis(
    every_second, redis_server, monkeypatch, caplog
):
    """In production the supervisor restarts ``runscheduler``; the new process must wait out the outage."""
    started = threading.Event()

    def create(**kwargs: Any) -> Any:
        scheduler = scheduler_create(**kwargs)
        scheduler.add_listener(lambda event: started.set(), EVENT_SCHEDULER_STARTED)
        return scheduler

    monkeypatch.setattr(runscheduler, "scheduler_create", create)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with override_settings(SCHEDULER_LEADER_TTL_S=1), caplog.at_level(logging.INFO):

            def kill_once_running() -> None:
                try:
                    if started.wait(15):
                        wait_for(lambda: runs() >= 1, timeout_s=15)
                finally:
                    redis_server.kill()  # whatever happened: the command then returns

            threading.Thread(target=kill_once_running, daemon=True).start()
            with pytest.raises(CommandError, match="Lost the scheduler leader lock"):
                call_command("runscheduler", "--poll", "0.1")
            assert started.is_set()

            started.clear()
            stopped_at = runs()

            def restart_redis_then_stop() -> None:
                try:
                    wait_for(lambda: "Cannot reach Redis" in caplog.text, timeout_s=15)
                    redis_server.start()
                    if started.wait(15):
                        wait_for(lambda: runs() > stopped_at, timeout_s=15)
                finally:
                    if isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), GracefulStop):
                        os.kill(os.getpid(), signal.SIGTERM)  # the command's handler: it stops the scheduler

            caplog.clear()
            threading.Thread(target=restart_redis_then_stop, daemon=True).start()
            call_command("runscheduler", "--poll", "0.1")  # the supervisor's restart, while Redis is down
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert started.is_set() and runs() > stopped_at
    assert "SIGTERM received" in caplog.text and leader_lock().holder() is None


def test_a_lock_released_while_a_renewal_is_under_way_is_not_reported_lost():
    """Found by the ``runscheduler`` test above: a SIGTERM's release raced the renewer thread, which
    then found the key gone, reported the lock lost, and made a clean stop exit non-zero."""
    lock = RedisLock(redis_key("scheduler", "leader"), ttl_s=1)
    assert lock.acquire()
    renew = lock.renew

    def renew_while_released() -> bool:
        lock.release()  # the holder lets go between the renewer's wake-up and its check
        return renew()

    lock.renew = renew_while_released  # type: ignore[method-assign]
    lost = threading.Event()
    lock.keep_alive(on_lost=lost.set)
    assert lock._renewer is not None
    lock._renewer.join(timeout=5)
    assert not lock._renewer.is_alive() and not lost.is_set()
    assert lock.holder() is None
