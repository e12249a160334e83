"""p50 / p95 / throughput of send-message, history and login, with and without nginx in front.

Usage:
    .venv/bin/python bench/bench_proxy.py [--layouts direct,proxy] [--duration 20] [--connections 10]
                                          [--runs 3] [--port 8941]

Needs Debian's ``wrk`` and ``nginx`` (``make nginx-deps`` installs both). Prepares a fresh
embedded-default deployment (SQLite, fakeredis, local embedder, FAISS, extractive answers) with the
shipped help centre, then ``--connections`` users, each with a session and an access token. For
each layout it starts the stack, and for each endpoint runs ``wrk -t C -c C -d DURATION``: one
keep-alive connection per user (a wrk thread each, so every connection carries its own token),
as fast as answers come back. Both layouts run side by side and the runs alternate between them
(so the rest of the machine's load falls on both alike); each endpoint is run ``--runs`` times per
layout, and the medians printed last are what docs/BENCHMARKS.md records.

Layouts:
    direct  gunicorn alone on 127.0.0.1, config/gunicorn.conf.py's defaults (the layout before
            issue 13: 3 gthread workers x 1 thread on SQLite with 2 cores)
    proxy   what ``make serve`` runs: nginx (deploy/nginx.conf.template) on 127.0.0.1 in front
            of gunicorn on a unix socket with scripts/serve.sh's proxied layout
    proxy:N the same with N gunicorn workers (e.g. ``--layouts direct,proxy,proxy:3``)

Throttles and the daily quota are lifted for the load; passwords use the production hasher
(PBKDF2), so login is CPU-bound by design and is reported, not targeted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _django
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nginx_conf  # noqa: E402 (after the path is set)

PASSWORD = "Bench-Proxy-Passphrase-7"
ENDPOINTS = ("send", "history", "login")
RESULT = re.compile(r"^RESULT (\{.*\})$", re.MULTILINE)
LUA = """
local users = %(users)s
local endpoint = "%(endpoint)s"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  local user = users[((index - 1) %% #users) + 1]
  local headers = {["Content-Type"] = "application/json", ["Host"] = "127.0.0.1"}
  if endpoint == "send" then
    headers["Authorization"] = "Bearer " .. user.token
    req = wrk.format("POST", "/api/chat/sessions/" .. user.session .. "/messages/", headers,
                     '{"content": "How do I reset my password?"}')
  elseif endpoint == "history" then
    headers["Authorization"] = "Bearer " .. user.token
    req = wrk.format("GET", "/api/chat/history/", headers)
  else
    req = wrk.format("POST", "/api/auth/login/", headers,
                     '{"username": "' .. user.name .. '", "password": "%(password)s"}')
  end
end
function request()
  return req
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, ' ..
    '"non_2xx": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def prepare(count: int) -> list[dict[str, Any]]:
    """The shipped help centre and ``count`` verified users with a session and an access token."""
    from django.core.management import call_command

    from chat.models import ChatSession
    from users.models import User
    from users.services import tokens_for
    from workspaces.services import workspace_personal_get

    call_command("populate_documents", verbosity=0)
    users = []
    for n in range(count):
        user = User.objects.create_user(
            username=f"bench{n}", email=f"bench{n}@example.com", password=PASSWORD, is_verified=True
        )
        session = ChatSession.objects.create(user=user, workspace=workspace_personal_get(user=user), title="bench")
        users.append({"name": user.username, "token": tokens_for(user).access, "session": session.pk})
    return users


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxied_layout() -> dict[str, str]:
    """scripts/serve.sh's gunicorn sizing behind nginx (read from the script, one source)."""
    text = (ROOT / "scripts" / "serve.sh").read_text()
    found = dict(re.findall(r'^\s*: "\$\{(GUNICORN_\w+):=([^}]*)\}"', text, re.MULTILINE))
    return {name: value for name, value in found.items() if name != "GUNICORN_BIND"}


def start(layout: str, port: int, work: Path) -> list[subprocess.Popen[bytes]]:
    work.mkdir(parents=True, exist_ok=True)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = os.environ | {"GUNICORN_ACCESS_LOG": "/dev/null", "GUNICORN_WARM_UP": "true"}
    if layout == "direct":
        env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
        return [subprocess.Popen([gunicorn, "-c", "config/gunicorn.conf.py", "config.wsgi"], cwd=ROOT, env=env)]
    socket_path = work / "gunicorn.sock"
    env |= proxied_layout() | {"GUNICORN_BIND": f"unix:{socket_path}"}
    if ":" in layout:  # proxy:N, N gunicorn workers behind nginx
        env["GUNICORN_WORKERS"] = layout.partition(":")[2]
    app = subprocess.Popen([gunicorn, "-c", "config/gunicorn.conf.py", "config.wsgi"], cwd=ROOT, env=env)
    run_dir = work / "nginx"
    conf = nginx_conf.render(f"127.0.0.1:{port}", f"unix:{socket_path}", run_dir)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proxy = subprocess.Popen([nginx, "-e", "stderr", "-p", str(run_dir), "-c", str(conf)])
    return [proxy, app]


def wait_ready(base: str, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/api/health/", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the stack did not become ready")


def run_wrk(base: str, endpoint: str, users: list[dict[str, Any]], args: argparse.Namespace, work: Path) -> dict:
    script = work / f"{endpoint}.lua"
    lua_users = (
        "{"
        + ", ".join(f'{{name = "{u["name"]}", token = "{u["token"]}", session = "{u["session"]}"}}' for u in users)
        + "}"
    )
    script.write_text(LUA % {"users": lua_users, "endpoint": endpoint, "password": PASSWORD})
    c = str(args.connections)
    command = ["wrk", "-t", c, "-c", c, "-d", f"{args.duration}s", "--timeout", "30s", "-s", str(script), base]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = RESULT.search(output)
    if not match:
        raise RuntimeError(f"no result from wrk:\n{output}")
    raw = json.loads(match.group(1))
    return {
        "req/s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50 ms": raw["p50_us"] / 1000,
        "p95 ms": raw["p95_us"] / 1000,
        "p99 ms": raw["p99_us"] / 1000,
        "non-2xx": raw["non_2xx"],
        "socket errors": raw["socket_errors"],
    }


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM if process is processes[-1] else signal.SIGQUIT)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layouts", default="direct,proxy")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            raise SystemExit(f"{tool} is missing: run `make nginx-deps` (Debian's wrk and nginx).")
    os.environ.update(
        {
            "THROTTLE_CHAT": "1000000/min",
            "THROTTLE_LOGIN": "1000000/min",
            "CHAT_DAILY_QUOTA": "100000000",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEV_SCHEDULER": "false",
            "JWT_ACCESS_MINUTES": "600",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    work = _django.setup("proxy")
    users = prepare(args.connections)
    layouts = args.layouts.split(",")
    endpoints = args.endpoints.split(",")
    # Every layout runs at once and the runs alternate between them, so that a change in what else
    # the machine is doing falls on all of them alike.
    stacks: dict[str, tuple[str, list[subprocess.Popen[bytes]]]] = {}
    results: dict[str, list[dict[str, float]]] = {f"{lay} {e}": [] for lay in layouts for e in endpoints}
    try:
        for layout in layouts:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            stacks[layout] = (base, start(layout, port, work / layout))
            wait_ready(base)
            for _ in range(2 * args.connections):  # every worker loads its model and indexes
                httpx.get(f"{base}/api/health/", timeout=30)
        for run in range(1, args.runs + 1):
            for layout in layouts:
                for endpoint in endpoints:
                    figures = run_wrk(stacks[layout][0], endpoint, users, args, work)
                    results[f"{layout} {endpoint}"].append(figures)
                    shown = "  ".join(f"{k} {v:.1f}" for k, v in figures.items())
                    sys.stdout.write(f"{layout:7} run {run} {endpoint:8} {shown}\n")
                    sys.stdout.flush()
    finally:
        for _, processes in stacks.values():
            stop(processes)
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    sys.stdout.write(f"--- medians of {args.runs} runs, {args.connections} connections, {args.duration} s each\n")
    for name, figures in medians.items():
        ratio = figures["p95 ms"] / max(figures["p50 ms"], 1e-9)
        shown = "  ".join(f"{k} {v:.1f}" for k, v in figures.items())
        sys.stdout.write(f"{name:17} {shown}  p95/p50 {ratio:.1f}\n")


if __name__ == "__main__":
    main()
