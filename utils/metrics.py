"""Prometheus metrics (``prometheus_client``) and the ``/metrics`` endpoint.

Every label has a bounded set of values: views are URL pattern names (never raw paths), statuses
are classes (``2xx``), providers and operations are fixed names, error kinds are exception class
names. Under gunicorn the workers write their samples to ``PROMETHEUS_MULTIPROC_DIR`` (set by
``config/gunicorn.conf.py``) and ``/metrics`` adds up every worker's files, so a scrape sees the
whole server whichever worker answers it. In one process (runserver, tests, management
commands) the default registry is used. The endpoint itself is ``utils.metrics_view.metrics``. This
module imports no Django, so providers can record from anywhere.
"""

from __future__ import annotations

import functools
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics, multiprocess
from prometheus_client.exposition import choose_encoder

# ``*_created`` timestamps double the series and multiprocess mode has none: the same series in
# every mode.
disable_created_metrics()

# Seconds. From a cached search (a few ms) to a streamed answer that runs for a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUEST_DURATION = Histogram(
    "ragchat_http_request_duration_seconds",
    "HTTP requests by view (URL pattern name), method and status class; streamed responses until their last byte.",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
RETRIEVAL_DURATION = Histogram(
    "ragchat_retrieval_duration_seconds",
    "Calls to the embedder and the vector store, by provider and operation (embed_query, query, upsert ...).",
    ["provider", "operation"],
    buckets=LATENCY_BUCKETS,
)
GENERATION_DURATION = Histogram(
    "ragchat_generation_duration_seconds",
    "Calls to the answer generator, by provider and operation (generate, stream: until the last delta).",
    ["provider", "operation"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "ragchat_provider_errors",
    "Provider calls that failed (after their retries), by provider and error class (ProviderTimeout ...).",
    ["provider", "kind"],
)
PROVIDER_RETRIES = Counter(
    "ragchat_provider_retries",
    "Attempts repeated after a failed one, by provider and why the failed one failed (http_429, timeout ...).",
    ["provider", "kind"],
)
DEGRADED_ANSWERS = Counter(
    "ragchat_degraded_answers",
    "Answers given extractively because the configured generator failed, by that generator.",
    ["provider"],
)
JOB_RUNS = Counter(
    "ragchat_job_runs",
    "Maintenance job runs in this process, by job and final status (succeeded, failed, skipped).",
    ["job", "status"],
)
MESSAGES_SENT = Counter("ragchat_chat_messages_sent", "Chat messages sent by users and stored (replays excluded).")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# --- recording ---------------------------------------------------------------------------------


def record_request(*, view: str, method: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"  # a client may send any verb
    HTTP_REQUEST_DURATION.labels(view, method, f"{status // 100}xx").observe(seconds)


def record_provider_error(provider: str, exc: BaseException) -> None:
    PROVIDER_ERRORS.labels(provider, type(exc).__name__).inc()


def record_retry(provider: str, kind: str) -> None:
    """Call where a provider's retry loop decides to try again; ``kind`` from ``failure_kind``."""
    PROVIDER_RETRIES.labels(provider, kind).inc()


def failure_kind(exc: BaseException) -> str:
    """Why an attempt failed, as a short bounded name: ``http_<status>``, ``timeout``, ``connection``."""
    for attribute in ("status_code", "status"):
        status = getattr(exc, attribute, None)
        if isinstance(status, int) and 100 <= status <= 599:
            return f"http_{status}"
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return "timeout"
    if any(word in name for word in ("connect", "network", "protocol", "closed", "reset")):
        return "connection"
    return "other"


def record_degraded(provider: str) -> None:
    """Call where an answer falls back to the extractive one; ``provider`` is the generator that failed."""
    DEGRADED_ANSWERS.labels(provider).inc()


def record_job_run(job: str, status: str) -> None:
    JOB_RUNS.labels(job, status).inc()


def record_message_sent() -> None:
    MESSAGES_SENT.inc()


# --- exposition --------------------------------------------------------------------------------


@functools.cache
def registry() -> CollectorRegistry:
    """All workers' samples under gunicorn (multiprocess mode), else this process's registry."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)
    return merged


def exposition(accept: str) -> tuple[bytes, str]:
    """The current samples encoded for a scraper's ``Accept`` header, and their content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry()), content_type
