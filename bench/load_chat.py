"""Load test of the whole chat flow over HTTP, then a check that no acknowledged message was lost.

Usage:
    .venv/bin/python bench/load_chat.py [--server gunicorn|runserver] [--users 10] [--duration 120]
                                        [--rate 0] [--history-duration 30] [--chunks 10000]
                                        [--workers N] [--threads N] [--metrics-out FILE] [--runs 1]

Starts the server on 127.0.0.1 against a fresh embedded-default deployment (SQLite, the local
embedder, FAISS, the extractive answerer; the file email backend) whose knowledge base is the
shipped help centre padded with synthetic chunks to --chunks. Each of the N simulated users walks
the whole flow: register, open the verification link from the emailed file, log in, open a session,
then, once all are in, until --duration is over: send a message (with an Idempotency-Key), and now and then read
their history or the session's messages; finally log out. Then N users read GET /api/chat/history/
as fast as it answers for --history-duration seconds.

--rate 0 (closed loop): each user sends again as soon as the answer arrives, which measures capacity
(messages/s) but not latency, since with N users queued on the server latency is N / throughput.
--rate R (open loop): the users together send R messages/s, each on a Poisson schedule, and a
message's latency counts from when it was due, so a server that falls behind shows it (no
coordinated omission).

Afterwards the database is checked: every acknowledged message (201) is stored exactly once.
Prints throughput, p50/p95/p99 per endpoint, statuses (5xx count), the server's RSS (all
workers) and the load generator's own CPU time, and with --metrics-out saves /metrics. With --runs N
the load is repeated N times against a fresh server on the same data (new users each time), and the
medians of the headline figures are printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import _django
import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Load-Test-Passphrase-1"
METRICS_TOKEN = "load-test-metrics-token"
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
LINK = re.compile(r"https?://\S+/api/auth/verify-email/([A-Za-z0-9_\-]+)/")


def prepare(chunks: int) -> None:
    """The knowledge base: the shipped help centre, padded with synthetic chunks."""
    import bench_search
    from django.core.management import call_command

    call_command("populate_documents", verbosity=0)
    bench_search.build(chunks, random.Random(5), reset=False)


def start_server(kind: str, port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
    python = sys.executable
    if kind == "gunicorn":
        command = [str(Path(python).with_name("gunicorn")), "-c", "config/gunicorn.conf.py", "config.wsgi"]
    else:
        command = [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    env = os.environ | {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "GUNICORN_ACCESS_LOG": "/dev/null",
        "GUNICORN_WORKERS": str(workers or ""),
        "GUNICORN_THREADS": str(threads or ""),
    }
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def wait_ready(base: str, deadline_s: float = 90) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/api/health/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become ready")


def server_rss_mb(proc: subprocess.Popen[bytes]) -> tuple[float, list[float]]:
    """(total RSS of the server and its workers, RSS of each worker) in MB."""
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in [proc.pid, *map(int, children)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS"):
                    sizes.append(int(line.split()[1]) / 1024)
        except FileNotFoundError:
            continue
    return sum(sizes), sizes[1:] or sizes


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter[Any]] = defaultdict(Counter)
        self.acked: list[tuple[int, str]] = []

    async def call(self, name: str, request: Any, due: float | None = None) -> httpx.Response | None:
        started = due if due is not None else time.perf_counter()
        try:
            response: httpx.Response = await request
            status: Any = response.status_code
        except httpx.HTTPError as exc:
            response, status = None, type(exc).__name__
        self.latency[name].append((time.perf_counter() - started) * 1000)
        self.status[name][status] += 1
        return response


def _verification_token(mail_dir: Path, email: str) -> str:
    for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        text = path.read_text(errors="replace")
        for message in text.split("-" * 79):
            if f"To: {email}" in message and (match := LINK.search(message)):
                return match.group(1)
    raise RuntimeError(f"no verification email for {email} in {mail_dir}")


async def onboard(client: httpx.AsyncClient, n: str, stats: Stats, mail_dir: Path) -> tuple[dict[str, str], str, int]:
    """Register, verify from the emailed link, log in, open a session: (auth headers, refresh, session id)."""
    username, email = f"load{n}", f"load{n}@example.com"
    body = {"username": username, "email": email, "password": PASSWORD}
    response = await stats.call("register", client.post("/api/auth/register/", json=body))
    assert response is not None and response.status_code == 201, response and response.text
    for _ in range(50):  # the file backend writes as the request ends
        try:
            token = _verification_token(mail_dir, email)
            break
        except RuntimeError:
            await asyncio.sleep(0.1)
    else:
        token = _verification_token(mail_dir, email)
    response = await stats.call("verify", client.get(f"/api/auth/verify-email/{token}/"))
    assert response is not None and response.status_code == 200, response and response.text
    response = await stats.call(
        "login", client.post("/api/auth/login/", json={"username": email, "password": PASSWORD})
    )
    assert response is not None and response.status_code == 200, response and response.text
    tokens = response.json()
    headers = {"Authorization": f"Bearer {tokens['access']}"}
    response = await stats.call("create_session", client.post("/api/chat/sessions/", json={}, headers=headers))
    assert response is not None and response.status_code == 201, response and response.text
    return headers, tokens["refresh"], response.json()["id"]


async def user(
    client: httpx.AsyncClient,
    n: int,
    account: tuple[dict[str, str], str, int],
    stop: float,
    rate: float,
    stats: Stats,
    rng: random.Random,
) -> None:
    headers, _, session_id = account
    due = time.perf_counter()
    sent = 0
    while time.monotonic() < stop:
        if rate > 0:
            due += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.monotonic() >= stop:
                break
        sent += 1
        key = uuid.uuid4().hex
        content = f"{QUESTIONS[(n + sent) % len(QUESTIONS)]} [{key[:8]}]"
        request = client.post(
            f"/api/chat/sessions/{session_id}/messages/",
            json={"content": content},
            headers=headers | {"Idempotency-Key": key},
        )
        response = await stats.call("send", request, due if rate > 0 else None)
        if response is not None and response.status_code == 201:
            stats.acked.append((response.json()["user_message"]["id"], content))
        if sent % 5 == 0:
            await stats.call("history", client.get("/api/chat/history/", headers=headers))
        if sent % 10 == 0:
            url = f"/api/chat/sessions/{session_id}/messages/?page_size=20"
            await stats.call("messages", client.get(url, headers=headers))


async def reader(client: httpx.AsyncClient, headers: dict[str, str], stop: float, stats: Stats) -> None:
    while time.monotonic() < stop:
        await stats.call("history_only", client.get("/api/chat/history/", headers=headers))


async def drive(
    base: str, users: int, duration: float, rate: float, history_duration: float, mail_dir: Path, run: int
) -> tuple[Stats, dict[str, float]]:
    stats = Stats()
    elapsed: dict[str, float] = {}
    limits = httpx.Limits(max_connections=users * 2, max_keepalive_connections=users * 2)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        rng = random.Random(11)
        # Everyone is signed up and logged in before the clock starts (password hashing is slow on
        # purpose and is not what this measures).
        accounts = await asyncio.gather(*(onboard(client, f"{run}x{n}", stats, mail_dir) for n in range(users)))
        started = time.monotonic()
        await asyncio.gather(
            *(user(client, n, accounts[n], started + duration, rate / users, stats, rng) for n in range(users))
        )
        elapsed["send"] = time.monotonic() - started
        if history_duration > 0:
            started = time.monotonic()
            await asyncio.gather(*(reader(client, h, started + history_duration, stats) for h, _, _ in accounts))
            elapsed["history_only"] = time.monotonic() - started
        await asyncio.gather(
            *(
                stats.call("logout", client.post("/api/auth/logout/", json={"refresh": r}, headers=h))
                for h, r, _ in accounts
            )
        )
    return stats, elapsed


def verify(acked: list[tuple[int, str]]) -> tuple[int, int]:
    """(missing, duplicated) among acknowledged messages, counted in the database."""
    from chat.models import ChatMessage

    contents = Counter(ChatMessage.objects.filter(sender="user").values_list("content", flat=True))
    stored_ids = set(ChatMessage.objects.filter(id__in=[i for i, _ in acked]).values_list("id", flat=True))
    missing = sum(1 for i, _ in acked if i not in stored_ids)
    duplicated = sum(1 for _, c in acked if contents[c] > 1)
    return missing, duplicated


def fetch_metrics(base: str, out: Path) -> None:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    out.write_text(response.text)
    sys.stdout.write(f"/metrics: {response.status_code}, {len(response.text)} bytes saved to {out}\n")


def report(args: argparse.Namespace, stats: Stats, elapsed: dict[str, float], work: Path) -> None:
    from utils.stats import percentile

    out = sys.stdout.write
    mode = f"open loop at {args.rate:g} messages/s" if args.rate > 0 else "closed loop"
    sizes = f"{args.workers or 'default'} workers x {args.threads or 'default'} threads"
    extra = f" ({sizes})" if args.server == "gunicorn" else ""
    out(f"server: {args.server}{extra}  users: {args.users}  {mode}  chunks: {args.chunks}  data: {work}\n")
    for name in ("register", "verify", "login", "create_session", "send", "history", "messages", "history_only"):
        values = stats.latency.get(name)
        if not values:
            continue
        rate = ""
        if name in elapsed:
            count = len(stats.acked) if name == "send" else len(values)
            rate = f"  {count / elapsed[name]:.1f}/s over {elapsed[name]:.0f} s"
        out(
            f"{name:>14}: n={len(values):<6} p50 {percentile(values, 50):7.1f} ms  p95 {percentile(values, 95):7.1f} ms"
            f"  p99 {percentile(values, 99):7.1f} ms{rate}  statuses {dict(stats.status[name])}\n"
        )
    server_errors = sum(n for c in stats.status.values() for s, n in c.items() if not isinstance(s, int) or s >= 500)
    out(f"5xx or transport errors: {server_errors}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--rate", type=float, default=0.0, help="total messages/s (0: closed loop)")
    parser.add_argument("--history-duration", type=float, default=30)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: the config's default)")
    parser.add_argument("--threads", type=int, default=0, help="threads per worker (0: the config's default)")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--metrics-out", type=Path)
    parser.add_argument("--runs", type=int, default=1, help="repeat with a fresh server; prints the medians")
    args = parser.parse_args()
    os.environ.update(
        {
            "THROTTLE_CHAT": "1000000/min",
            "THROTTLE_LOGIN": "1000000/min",
            "THROTTLE_REGISTER": "1000000/min",
            "THROTTLE_ACCOUNT_TOKEN": "1000000/min",
            "CHAT_DAILY_QUOTA": "100000000",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEV_SCHEDULER": "false",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    work = _django.setup("load")
    os.environ["PUBLIC_BASE_URL"] = base = f"http://127.0.0.1:{args.port}"
    mail_dir = work / "mail"
    os.environ["EMAIL_FILE_PATH"] = str(mail_dir)
    prepare(args.chunks)
    figures: dict[str, list[float]] = defaultdict(list)
    failed = False
    for run in range(1, args.runs + 1):
        if args.runs > 1:
            sys.stdout.write(f"--- run {run} of {args.runs}\n")
        failed |= run_once(args, base, work, mail_dir, run, figures)
    if args.runs > 1:
        sys.stdout.write(f"--- median of {args.runs} runs: ")
        sys.stdout.write("  ".join(f"{name} {statistics.median(v):.1f}" for name, v in figures.items()) + "\n")
    if failed:
        sys.exit(1)


def run_once(
    args: argparse.Namespace, base: str, work: Path, mail_dir: Path, run: int, figures: dict[str, list[float]]
) -> bool:
    """One server start, load and check; adds its headline figures; True if a message was lost."""
    from utils.stats import percentile

    server = start_server(args.server, args.port, args.workers, args.threads)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        wait_ready(base)
        stats, elapsed = asyncio.run(
            drive(base, args.users, args.duration, args.rate, args.history_duration, mail_dir, run)
        )
        total_rss, worker_rss = server_rss_mb(server)
        if args.metrics_out:
            fetch_metrics(base, args.metrics_out)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    report(args, stats, elapsed, work)
    missing, duplicated = verify(stats.acked)
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    wall = sum(elapsed.values())
    sys.stdout.write(
        f"acknowledged: {len(stats.acked)}  missing: {missing}  duplicated: {duplicated}\n"
        f"server RSS: {total_rss:.0f} MB in all; workers: {', '.join(f'{r:.0f}' for r in worker_rss)} MB\n"
        f"load generator CPU: {client_cpu:.1f} s over {wall:.0f} s ({client_cpu / max(wall, 1e-9):.2f} cores)\n"
    )
    figures["messages/s"].append(len(stats.acked) / elapsed["send"])
    figures["send p50 ms"].append(percentile(stats.latency["send"], 50) or 0.0)
    figures["send p95 ms"].append(percentile(stats.latency["send"], 95) or 0.0)
    if "history_only" in elapsed:
        figures["history req/s"].append(len(stats.latency["history_only"]) / elapsed["history_only"])
    return bool(missing or duplicated)


if __name__ == "__main__":
    main()
