"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Threaded workers (``gthread``): a streamed answer (Server-Sent Events) holds one thread, not a
whole worker, so other clients keep being served while streams are open. Sizes come from the
environment.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

# .env, when present (ENV_FILE names another; empty: none); the environment wins over it.
_ENV_FILE = os.environ.get("ENV_FILE", str(Path(__file__).resolve().parent.parent / ".env"))
if _ENV_FILE and Path(_ENV_FILE).is_file():
    load_dotenv(_ENV_FILE, override=False)

# An empty variable (as in .env.example) means the default.
bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"
# Sizes by database (measured in docs/BENCHMARKS.md, 2 cores, 10 users sending as fast as answered):
# - SQLite (the embedded default): one thread per worker, cores + 1 workers. SQLite has one writer
#   at a time and a waiting writer sleeps in steps of up to 100 ms; a thread holding the write lock
#   while it waits for its worker's GIL makes every other writer sleep. 3x1 answered 39 messages/s,
#   2x4 33, 3x2 27. Each open SSE stream holds a worker, which is brief with extractive answers;
#   streaming from a remote generator on SQLite wants GUNICORN_THREADS raised.
# - PostgreSQL: one worker per core, 4 threads each: writers do not sleep, threads keep a core busy
#   while one waits on the database or a provider, and an open stream holds only a thread.
# - Behind nginx (make serve sets GUNICORN_WORKER_CLASS=sync): plain sync workers, one per core
#   (at least 2) on SQLite, 2 x cores + 1 on PostgreSQL. nginx hands each worker a whole request
#   and takes the whole answer at once, so a worker never waits on a client, and idle workers take
#   requests from one shared queue. On SQLite every extra process is one more writer sleeping in
#   SQLite's busy handler: 3 sync workers left send-message with multi-second tails, 2 did not
#   (docs/BENCHMARKS.md, issue 13). An open answer stream holds a worker, which is why
#   CHAT_MAX_CONCURRENT_STREAMS bounds them per user (README "Sizing").
_SQLITE = (os.environ.get("DATABASE_URL") or "sqlite").startswith("sqlite")
_CORES = multiprocessing.cpu_count()
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "gthread"
_SYNC = worker_class == "sync"
if _SYNC:
    workers = int(os.environ.get("GUNICORN_WORKERS") or (max(2, _CORES) if _SQLITE else 2 * _CORES + 1))
else:
    workers = int(os.environ.get("GUNICORN_WORKERS") or (_CORES + 1 if _SQLITE else _CORES))
threads = int(os.environ.get("GUNICORN_THREADS") or (1 if _SQLITE or _SYNC else 4))
# Connections a worker holds at once, kept-alive idle ones included. gthread's default (1000) lets
# the first worker to wake take every keep-alive client while its siblings idle: 10 users all ended
# up on one of 3 workers. At twice its threads a busy worker stops accepting and the others take
# the next clients; with 10 users at 40 messages/s, p50/p95 went from 51/187 ms to 32/67 ms.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS") or 2 * threads)
# A stream may last as long as the answer budget; the worker heartbeat is separate from threads.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle a worker now and then (a guard against slow leaks), but rarely: a new worker spends about
# 2 s of CPU loading Django, the model and the indexes; at 2,000 requests that was a third of a
# core at 600 history reads/s.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "10000"))
# gunicorn's largest request line (its default is 4094): a search query of 300 characters
# percent-encodes to at most 3.6 KB, so real requests never meet a 414 from the server itself.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
# Header lines per request (gunicorn's default 100). Behind nginx (make serve) the proxy bounds
# headers by size (4 x 8,000 bytes, a JSON 431 beyond) and this is raised so that gunicorn never
# answers a 431 of its own in plain text.
limit_request_fields = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELDS", "100"))
# Load the app (and the local embedder) once in the master; workers share its memory pages.
preload_app = os.environ.get("GUNICORN_PRELOAD", "false").lower() == "true"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), which two
# servers on one host would share; opt in with GUNICORN_CONTROL_SOCKET=/path/to/socket.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The client address for throttles comes from REMOTE_ADDR, or behind nginx from the X-Forwarded-For
# entry it adds (NUM_PROXIES=1, set by make serve); never log headers. Behind nginx %(h)s is the
# socket, not the client: NGINX_ACCESS_LOG=/path logs client addresses.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
logger_class = "utils.access_log.RedactingLogger"  # masks the token of a verification link in paths

# --- Prometheus metrics from every worker (prometheus_client's multiprocess mode) ---------------
# Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up.
# Set here, in the master, before any worker imports prometheus_client. Default: a directory of
# this master's own, so two servers on one host never mix (or wipe) each other's files.
_DEFAULT_METRICS_DIR = os.path.join(tempfile.gettempdir(), f"ragchat-metrics-{os.getpid()}")
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DEFAULT_METRICS_DIR
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)  # also for --check-config


def on_starting(server: Any) -> None:
    """Start from empty metric files: a previous run's counters must not be added to this one's."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def post_worker_init(worker: Any) -> None:
    """Load the local model and indexes before this worker takes a connection (GUNICORN_WARM_UP)."""
    if os.environ.get("GUNICORN_WARM_UP", "true").lower() != "true":
        return
    from django.db import connections

    from rag.services.retrieval import warm_up

    try:
        warm_up()
    except Exception as exc:  # e.g. not migrated yet: the first request tries again and reports it
        worker.log.warning("Warm-up failed (%s: %s); providers load on first use", type(exc).__name__, exc)
    finally:
        connections.close_all()  # this thread serves no requests


# Request body bytes a worker reads and discards after answering early (see post_request).
_DRAIN_LIMIT = int(os.environ.get("MAX_UPLOAD_BYTES") or 10 * 1024 * 1024) + 1024 * 1024


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Read what the application left of the request body before the connection closes.

    An early answer (a 413 from Content-Length, a 401 before the body is parsed) leaves body bytes
    unread; a sync worker then closes the socket with them in its buffer, the kernel answers with
    a reset instead of a clean close, and nginx, still sending the body, reports a 502 instead of
    the application's answer. nginx has already bounded the body; gunicorn alone is bounded here.
    """
    body = getattr(req, "body", None)
    if body is None:
        return
    drained = 0
    try:
        while drained <= _DRAIN_LIMIT and (chunk := body.read(65536)):
            drained += len(chunk)
    except Exception as exc:  # the client left or sent garbage: the connection closes anyway
        worker.log.debug("Request body not drained: %s", exc)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters and histograms keep counting in the sum)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the default metrics directory (one named by PROMETHEUS_MULTIPROC_DIR is left in place)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == _DEFAULT_METRICS_DIR:
        shutil.rmtree(_DEFAULT_METRICS_DIR, ignore_errors=True)
