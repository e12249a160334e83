"""The production stack for the proxy tests: nginx (deploy/nginx.conf.template) in front of
gunicorn on a unix socket, laid out as scripts/serve.sh does, on free ports of 127.0.0.1; and
gunicorn alone with config/gunicorn.conf.py's defaults, the layout before issue 13."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import nginx_conf  # noqa: E402 (after the path is set)

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def nginx_binary() -> str:
    """nginx, or skip (fail on CI, where CI is set: `make nginx-deps` must have installed it)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    message = "nginx is not installed (make nginx-deps installs Debian's nginx-light)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_layout() -> dict[str, str]:
    """The GUNICORN_* defaults scripts/serve.sh sets behind nginx (read from the script)."""
    text = (ROOT / "scripts" / "serve.sh").read_text()
    found = dict(re.findall(r'^\s*: "\$\{(GUNICORN_\w+):=([^}]*)\}"', text, re.MULTILINE))
    return {name: value for name, value in found.items() if name != "GUNICORN_BIND"}


def app_environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "REDIS_", "DATABASE_"))}
    return env | {
        "SECRET_KEY": "proxy-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VAR_DIR": str(work),
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "DEV_SCHEDULER": "false",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_ACCESS_LOG": "/dev/null",
        "GUNICORN_CONTROL_SOCKET": "",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }


@dataclass
class Stack:
    base: str
    port: int
    processes: list[subprocess.Popen[bytes]]
    log: Path

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=30)


def _wait_ready(stack: Stack, deadline_s: float = 180) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if any(p.poll() is not None for p in stack.processes):
            break
        try:
            if httpx.get(f"{stack.base}/api/health/", timeout=5).status_code in (200, 503):
                # Every worker loads its model on start (GUNICORN_WARM_UP); a few calls reach them all.
                for _ in range(6):
                    httpx.get(f"{stack.base}/api/health/", timeout=30)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stack.stop()
    pytest.fail(f"the stack did not start:\n{stack.log.read_text(errors='replace')[-3000:]}")


@contextmanager
def running_stack(work: Path, *, proxy: bool) -> Iterator[Stack]:
    """``proxy``: nginx + gunicorn as scripts/serve.sh lays them out; else gunicorn alone."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = work / "stack.log"
    env = app_environment(work)
    # A migrated database, as `make serve` has: the knowledge base's version lives in it.
    manage = [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"]
    migrate_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    migrated = subprocess.run(manage, cwd=ROOT, env=migrate_env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    with log.open("ab") as out:
        if proxy:
            nginx = nginx_binary()
            sock = work / "gunicorn.sock"
            env |= serve_layout() | {"GUNICORN_BIND": f"unix:{sock}"}
            conf = nginx_conf.render(f"127.0.0.1:{port}", f"unix:{sock}", work / "nginx")
            command = [nginx, "-e", "stderr", "-p", str(work / "nginx"), "-c", str(conf)]
            processes = [subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)]
        else:
            env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
            processes = []
        gunicorn = [GUNICORN, "-c", "config/gunicorn.conf.py", "config.wsgi"]
        processes.append(subprocess.Popen(gunicorn, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True))
    stack = Stack(f"http://127.0.0.1:{port}", port, processes, log)
    try:
        _wait_ready(stack)
        yield stack
    finally:
        stack.stop()


class Trickle:
    """``count`` slowloris connections: each sends a request line, then one header line every
    ``every_s`` seconds, never finishing its headers (and comes back if it is dropped)."""

    def __init__(self, port: int, count: int, every_s: float = 3.0) -> None:
        self.port, self.every_s = port, every_s
        self.sockets = [self._open() for _ in range(count)]
        self.lines_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(b"GET /api/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for index, sock in enumerate(self.sockets):
                try:
                    if sock is None:
                        raise OSError("reconnect")
                    sock.sendall(b"X-Trickle-%d: a\r\n" % self.lines_sent)
                    self.lines_sent += 1
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.sockets[index] = self._open()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


def health_latencies(base: str, count: int, timeout_s: float, spacing_s: float = 0.25) -> list[float]:
    """Seconds each of ``count`` health requests took (one that failed counts as ``timeout_s``)."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            httpx.get(f"{base}/api/health/", timeout=timeout_s)
            latencies.append(time.perf_counter() - started)
        except httpx.HTTPError:
            latencies.append(timeout_s)
        time.sleep(spacing_s)
    return latencies
