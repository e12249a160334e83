"""Under gunicorn with two workers, ``/metrics`` adds up every worker's samples, and keep-alive
clients are spread over both workers.

Runs the real ``config/gunicorn.conf.py`` (hooks included) on the embedded default, with a
temporary VAR_DIR and metrics directory, bound to a free port on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.gunicorn_process import stop, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-metrics-token-0123456789"
PATH = "/api/chat/sessions/"  # 401 without a token: no database work, served by any worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, port: int, metrics_dir: Path, log: Path) -> None:
        self.port, self.metrics_dir, self.log = port, metrics_dir, log

    def get(self, path: str, **headers: str) -> http.client.HTTPResponse:
        """One request on its own connection, so that either worker may accept it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", path, headers={"Connection": "close", **headers})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def scrape(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        body = conn.getresponse().read().decode()
        conn.close()
        return body

    def served_per_worker(self) -> dict[int, float]:
        """Requests to PATH per worker pid, read from each worker's own file (not through /metrics)."""
        served = {}
        for path in self.metrics_dir.glob("histogram_*.db"):
            families = MultiProcessCollector.merge([str(path)], accumulate=True)
            served[int(path.stem.split("_")[1])] = _count_in(families, "chat:sessions")
        return served


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: starting gunicorn and its two workers is most of the cost."""
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by a previous run")
    port, log = _free_port(), tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "PROMETHEUS_", "GUNICORN_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="gunicorn-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        VAR_DIR=str(tmp_path / "var"),
        METRICS_TOKEN=TOKEN,
        LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="2",
        GUNICORN_ACCESS_LOG="-",
        GUNICORN_CMD_ARGS="--no-control-socket",  # gunicorn 27's default socket path is per user, not per server
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, metrics_dir, log)
    try:
        wait_until_serving(lambda: server.get(PATH), process, log, timeout_s=20, interval_s=0.1)
        yield server
    finally:
        stop(process)


def _count_in(families: Iterable[Metric], view: str) -> float:
    for family in families:
        if family.name == "ragchat_http_request_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_count") and s.labels == {"view": view, "method": "GET", "status": "4xx"}:
                    return s.value
    return 0.0


def _count(body: str, view: str) -> float:
    return _count_in(text_string_to_metric_families(body), view)


def test_metrics_add_up_the_requests_of_both_workers(server):
    assert not (server.metrics_dir / "counter_999999.db").exists()  # wiped when the master started
    sent = 1  # the readiness probe
    # Four requests at a time: one after another, an idle worker on a busy machine can win every
    # accept; a worker busy with one request cannot take the next, so the other one does.
    with ThreadPoolExecutor(max_workers=4) as pool:
        while sum(1 for n in server.served_per_worker().values() if n) < 2 and sent < 400:
            assert [r.status for r in pool.map(lambda _: server.get(PATH), range(4))] == [401] * 4
            sent += 4
    served = server.served_per_worker()
    assert len([n for n in served.values() if n]) == 2, f"one worker took all {sent} requests"
    assert sum(served.values()) == sent
    assert _count(server.scrape(), "chat:sessions") == sent  # whichever worker answers the scrape

    # A worker that exits (max_requests, a crash) leaves its counts in the sum.
    os.kill(min(served), signal.SIGTERM)  # a worker of the gunicorn this test started
    deadline = time.monotonic() + 10
    while _count(server.scrape(), "chat:sessions") != sent and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _count(server.scrape(), "chat:sessions") == sent
    assert server.get("/metrics").status == 401
    assert "Traceback" not in server.log.read_text()


def test_request_ids_and_json_logs_under_gunicorn(server):
    response = server.get(PATH, **{"X-Request-ID": "gunicorn-1", "Authorization": "Bearer not-a-valid-jwt"})
    assert response.status == 401 and response.getheader("X-Request-ID") == "gunicorn-1"
    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while not lines and time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for line in server.log.read_text().splitlines()
            if line.startswith("{") and '"gunicorn-1"' in line
        ]
        time.sleep(0.05)
    assert lines and lines[0]["logger"] == "django.request" and lines[0]["request_id"] == "gunicorn-1"
    assert "not-a-valid-jwt" not in server.log.read_text()


def test_keep_alive_clients_spread_over_the_workers(server):
    # Two workers of two threads each hold at most 4 connections apiece (GUNICORN_WORKER_CONNECTIONS
    # defaults to twice the threads): of 5 clients connected at once, one must be on the other worker.
    # A worker the test above stopped is replaced: wait until two workers answer new connections.
    deadline, start = time.monotonic() + 20, server.served_per_worker()
    while len(live := {pid for pid, n in server.served_per_worker().items() if n > start.get(pid, 0)}) < 2:
        assert time.monotonic() < deadline, "two workers did not come up"
        server.get(PATH)
    before = server.served_per_worker()
    second = max(live)
    clients = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(5)]
    try:
        # The first worker is the only one awake when the clients connect, as when its sibling is busy.
        os.kill(second, signal.SIGSTOP)
        try:
            for client in clients:
                client.connect()
            time.sleep(0.5)  # the awake worker accepts every connection it has room for
        finally:
            os.kill(second, signal.SIGCONT)
        time.sleep(0.5)  # the other worker accepts the rest, before any request is sent
        for client in clients:
            client.request("GET", PATH)
        for client in clients:
            response = client.getresponse()
            response.read()
            assert response.status == 401
    finally:
        for client in clients:
            client.close()
    after = server.served_per_worker()
    assert sum(after.values()) - sum(before.values()) == 5
    grew = {pid for pid, n in after.items() if n > before.get(pid, 0)}
    assert grew == live, f"one worker took all 5 clients: {before} -> {after}"
