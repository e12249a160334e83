"""Load test of the chat flow over HTTP, then a check that no acknowledged message was lost.

Usage:
    .venv/bin/python bench/load_chat.py [--server gunicorn|runserver] [--users 10] [--duration 120]
                                        [--history-duration 30] [--chunks 10000]

Starts the server on 127.0.0.1 against a fresh embedded-default deployment (SQLite, the local
embedder, FAISS, the extractive answerer) whose knowledge base is the shipped help centre padded
with synthetic chunks to --chunks. N simulated users, each with its own session, send messages as
fast as the server answers (each with an Idempotency-Key) for --duration seconds; then N users read
GET /api/chat/history/ for --history-duration seconds. Afterwards the database is checked: every
acknowledged message (201) is stored exactly once. Prints throughput, p50/p95/p99 per endpoint,
errors by status and the server's RSS. The load stays on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import _django
import httpx

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How do I reset my password?",
    "What is an AI chatbot?",
    "How long is the verification link valid?",
    "Can I export a conversation?",
    "What happens when I send too many messages?",
    "How long are my chats kept?",
    "What does retrieval-augmented generation mean?",
    "How do refresh tokens work?",
]


def prepare(users: int, chunks: int) -> list[tuple[str, int]]:
    """Knowledge base, users, tokens and one session each; returns (access token, session id)."""
    import bench_search
    from django.core.management import call_command

    from chat.models import ChatSession
    from users.models import User
    from users.services import tokens_for

    call_command("populate_documents", verbosity=0)
    bench_search.build(chunks, random.Random(5), reset=False)
    pairs = []
    for n in range(users):
        user = User.objects.create_user(f"load{n}", f"load{n}@example.com", "Load-Test-Passphrase-1", is_verified=True)
        session = ChatSession.objects.create(user=user, title=f"load {n}")
        pairs.append((tokens_for(user).access, session.pk))
    return pairs


def start_server(kind: str, port: int) -> subprocess.Popen[bytes]:
    python = sys.executable
    if kind == "gunicorn":
        command = [str(Path(python).with_name("gunicorn")), "-c", "config/gunicorn.conf.py", "config.wsgi"]
    else:
        command = [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = os.environ | {"PORT": str(port), "HOST": "127.0.0.1", "GUNICORN_ACCESS_LOG": "/dev/null"}
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_ready(base: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/api/health/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become ready")


def server_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """RSS of the server process and its children (gunicorn workers)."""
    pids = [proc.pid] + [
        int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    ]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


async def sender(
    client: httpx.AsyncClient, token: str, session_id: int, stop: float, stats: dict, acked: list[tuple[int, str]]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    while time.monotonic() < stop:
        n += 1
        key = uuid.uuid4().hex
        content = f"{QUESTIONS[n % len(QUESTIONS)]} [{key[:8]}]"
        started = time.perf_counter()
        try:
            response = await client.post(
                f"/api/chat/sessions/{session_id}/messages/",
                json={"content": content},
                headers=headers | {"Idempotency-Key": key},
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        stats["send"].append((time.perf_counter() - started) * 1000)
        stats["status"][status] += 1
        if status == 201:
            acked.append((response.json()["user_message"]["id"], content))


async def reader(client: httpx.AsyncClient, token: str, stop: float, stats: dict) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < stop:
        started = time.perf_counter()
        try:
            status = (await client.get("/api/chat/history/", headers=headers)).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        stats["history"].append((time.perf_counter() - started) * 1000)
        stats["history_status"][status] += 1


async def drive(base: str, pairs: list[tuple[str, int]], duration: float, history_duration: float) -> tuple[dict, list]:
    stats: dict = defaultdict(list)
    stats["status"], stats["history_status"] = Counter(), Counter()
    acked: list[tuple[int, str]] = []
    limits = httpx.Limits(max_connections=len(pairs) * 2)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(sender(client, t, s, started + duration, stats, acked) for t, s in pairs))
        stats["send_elapsed"] = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(reader(client, t, started + history_duration, stats) for t, _ in pairs))
        stats["history_elapsed"] = time.monotonic() - started
    return stats, acked


def verify(acked: list[tuple[int, str]]) -> tuple[int, int]:
    """(missing, duplicated) among acknowledged messages, counted in the database."""
    from chat.models import ChatMessage

    contents = Counter(ChatMessage.objects.filter(sender="user").values_list("content", flat=True))
    stored_ids = set(ChatMessage.objects.filter(id__in=[i for i, _ in acked]).values_list("id", flat=True))
    missing = sum(1 for i, _ in acked if i not in stored_ids)
    duplicated = sum(1 for _, c in acked if contents[c] > 1)
    return missing, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--history-duration", type=float, default=30)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    os.environ.update(
        {
            "THROTTLE_CHAT": "1000000/min",
            "CHAT_DAILY_QUOTA": "100000000",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEV_SCHEDULER": "false",
        }
    )
    work = _django.setup("load")
    pairs = prepare(args.users, args.chunks)
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(args.server, args.port)
    try:
        wait_ready(base)
        stats, acked = asyncio.run(drive(base, pairs, args.duration, args.history_duration))
        rss = server_rss_mb(server)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    missing, duplicated = verify(acked)
    from utils.stats import percentile

    send, history = stats["send"], stats["history"]
    out = sys.stdout.write
    out(f"server: {args.server}  users: {args.users}  data: {work}\n")
    out(
        f"send:    {len(send)} requests in {stats['send_elapsed']:.0f} s = {len(acked) / stats['send_elapsed']:.1f} "
        f"messages/s; p50 {statistics.median(send):.0f} ms  p95 {percentile(send, 95):.0f} ms  "
        f"p99 {percentile(send, 99):.0f} ms; statuses {dict(stats['status'])}\n"
    )
    out(
        f"history: {len(history)} requests in {stats['history_elapsed']:.0f} s = "
        f"{len(history) / stats['history_elapsed']:.0f} requests/s; p50 {statistics.median(history):.0f} ms  "
        f"p95 {percentile(history, 95):.0f} ms; statuses {dict(stats['history_status'])}\n"
    )
    out(f"acknowledged: {len(acked)}  missing: {missing}  duplicated: {duplicated}  server RSS: {rss:.0f} MB\n")


if __name__ == "__main__":
    main()
