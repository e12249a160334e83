"""How long a document ingested by `manage.py ingest` takes to be found by a running server.

Usage: .venv/bin/python bench/bench_index_visibility.py [--trials 5] [--server runserver gunicorn]

For each server kind: a fresh SQLite database and FAISS index in a temporary VAR_DIR, the server
on a free port of 127.0.0.1 (runserver: the dev server of `make run`; gunicorn: two workers, as
`make serve`), then per trial a new document is written to a file, `manage.py ingest` runs as its
own process, and from the moment it exits the search API is asked every 20 ms until the document
is the top result. Before the trials, one document is added through the server's own API (as an
admin edit would be), so that the server has written to the index itself. Prints the median and
the worst delay, and the search latency at rest (median of 50 searches) as the baseline: the delay
is bounded by RAG_INDEX_CHECK_S (0.5 s) plus one search.
No Redis: each process has its own fakeredis, so only the database carries the version.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
MAKE_USER = (
    "from users.models import User; from users.services import tokens_for; "
    "u = User.objects.create_user(username='bench', email='bench@example.com', password='x-Pass-12345', "
    "is_verified=True, is_staff=True); print(tokens_for(u).access)"
)
TOPICS = ["kayak rentals", "glacier tours", "bicycle repairs", "pottery classes", "sailing lessons", "cheese tasting"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr)
    return result.stdout


def add_through_the_server(port: int, token: str) -> None:
    """A staff write served by the server itself (as an admin edit would be)."""
    body = json.dumps({"title": "Opening hours", "content": "The office opens at nine.", "category": "FAQ"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", "/api/rag/documents/", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 201:
        sys.exit(f"POST /api/rag/documents/ answered {response.status}")


def search(port: int, token: str, query: str) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/rag/search/?q={quote(query)}", headers={"Authorization": f"Bearer {token}"})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return [r["title"] for r in body.get("results", [])]


def run(kind: str, trials: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "GUNICORN_", "RAG_"))}
        env.update(
            DEBUG="true" if kind == "runserver" else "false",
            SECRET_KEY="bench-index-visibility-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            ALLOWED_HOSTS="127.0.0.1",
            SECURE_SSL_REDIRECT="false",
            VAR_DIR=f"{tmp}/var",
            LOG_LEVEL="WARNING",
            DEV_SCHEDULER="false",
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="2",
            GUNICORN_CMD_ARGS="--no-control-socket",
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        token = manage(env, "shell", "-c", MAKE_USER).strip().splitlines()[-1]
        if kind == "runserver":
            command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        else:
            command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    search(port, token, "warm up")
                    break
                except (OSError, ValueError):
                    if time.monotonic() > deadline:
                        sys.exit(f"{kind} did not start")
                    time.sleep(0.2)
            add_through_the_server(port, token)
            at_rest = []
            for n in range(50):
                started = time.perf_counter()
                search(port, token, f"how do I reset my password {n}")
                at_rest.append(time.perf_counter() - started)
            delays = []
            for trial in range(trials):
                topic = TOPICS[trial % len(TOPICS)]
                title = f"{topic.title()} {trial}"
                folder = Path(tmp) / f"docs{trial}"
                folder.mkdir()
                text = f"# {title}\n\nAll about {topic}: prices, hours and booking for {topic}.\n"
                (folder / "doc.md").write_text(text)
                manage(env, "ingest", str(folder))
                ingested = time.perf_counter()
                while title not in search(port, token, topic)[:1]:
                    if time.perf_counter() - ingested > 30:
                        sys.exit(f"{kind}: {title!r} not found 30 s after the ingest")
                    time.sleep(0.02)
                delays.append(time.perf_counter() - ingested)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    print(
        f"{kind:9}  ingest -> found: median {statistics.median(delays) * 1000:6.0f} ms, "
        f"worst {max(delays) * 1000:6.0f} ms over {trials} trials; "
        f"baseline search at rest: median {statistics.median(at_rest) * 1000:5.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--server", nargs="+", default=["runserver", "gunicorn"], choices=["runserver", "gunicorn"])
    args = parser.parse_args()
    for kind in args.server:
        run(kind, args.trials)


if __name__ == "__main__":
    main()
