"""Account mail off the request path.

A password reset for a known address used to answer in 363 ms (an SMTP exchange) and one for an
unknown address in 6 ms, which told anyone which accounts exist. Services now hand the mail to
this outbox after their transaction commits; one daemon thread per process sends it, so the
request does no mail I/O whatever the address and both answers take the same time.

``EMAIL_SEND_IN_BACKGROUND=false`` sends inline instead (tests that read ``mail.outbox`` right
after a request use it). The queue is bounded (``EMAIL_QUEUE_SIZE``): when it is full the mail is
dropped with a warning, as a failed SMTP exchange is (the user can ask for another link). Mail
still queued at exit is given ``EMAIL_DRAIN_SECONDS`` to go out.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

Job = tuple[Callable[..., None], tuple[Any, ...]]
_lock = threading.Lock()
_queue: queue.Queue[Job | None] | None = None
_thread: threading.Thread | None = None
_pid = 0


def submit(send: Callable[..., None], *args: Any) -> None:
    """Send ``send(*args)`` from the outbox thread (or inline when background sending is off)."""
    if not settings.EMAIL_SEND_IN_BACKGROUND:
        send(*args)
        return
    try:
        _ensure_worker().put_nowait((send, args))
    except queue.Full:
        logger.warning("Mail outbox full (%d queued); %s dropped", settings.EMAIL_QUEUE_SIZE, send.__name__)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every queued mail has been handed to the backend; False on timeout."""
    current = _queue
    if current is None:
        return True
    done = threading.Event()

    def waiter() -> None:
        current.join()
        done.set()

    threading.Thread(target=waiter, name="mail-outbox-flush", daemon=True).start()
    return done.wait(timeout)


def _ensure_worker() -> queue.Queue[Job | None]:
    global _queue, _thread, _pid
    with _lock:
        # After a fork (gunicorn's preload) the parent's thread does not exist in the child.
        if _queue is None or _thread is None or not _thread.is_alive() or _pid != os.getpid():
            _queue = queue.Queue(maxsize=max(1, settings.EMAIL_QUEUE_SIZE))
            _thread = threading.Thread(target=_run, args=(_queue,), name="mail-outbox", daemon=True)
            _pid = os.getpid()
            _thread.start()
        return _queue


def _run(jobs: queue.Queue[Job | None]) -> None:
    while True:
        job = jobs.get()
        try:
            if job is None:
                return
            send, args = job
            send(*args)
        except Exception:  # boundary: one failed mail must not stop the outbox
            logger.exception("Mail outbox: sending failed")
        finally:
            jobs.task_done()


@atexit.register
def _drain_at_exit() -> None:
    if _queue is None or _pid != os.getpid():
        return
    if not flush(timeout=float(getattr(settings, "EMAIL_DRAIN_SECONDS", 10))):
        logger.warning("Mail outbox: %d mail(s) not sent before exit", _queue.qsize())
