"""``manage.py runscheduler``: the production scheduler, a ``BlockingScheduler`` in its own process.

It waits for the leader lock (so a dev server or a second copy never schedules alongside it),
runs until SIGTERM or SIGINT, lets running jobs finish, releases the lock and exits 0. A second
signal stops it at once. If it loses the lock it exits non-zero so that its supervisor restarts it.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers.base import BaseScheduler
from django.core.management.base import BaseCommand, CommandError, CommandParser

from background_tasks import jobs
from background_tasks.scheduler import leader_lock, scheduler_create

logger = logging.getLogger(__name__)


class GracefulStop:
    """Turns SIGTERM/SIGINT into one ``scheduler.shutdown(wait=True)`` from a helper thread
    (a signal handler must not block), even if the signal arrives while the scheduler starts."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._started = threading.Event()
        self._scheduler: BaseScheduler | None = None
        self._lock = threading.Lock()
        self._shutting_down = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def attach(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)

    def request(self) -> None:
        self.requested.set()
        if self._started.is_set():
            self._shutdown_soon()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: letting running jobs finish, then stopping", signal.Signals(signum).name)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second signal stops at once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.request()

    def _on_started(self, event: SchedulerEvent) -> None:
        self._started.set()
        if self.requested.is_set():
            self._shutdown_soon()

    def _shutdown_soon(self) -> None:
        with self._lock:
            if self._shutting_down or self._scheduler is None:
                return
            self._shutting_down = True
        threading.Thread(target=self._scheduler.shutdown, kwargs={"wait": True}, name="shutdown", daemon=True).start()


class Command(BaseCommand):
    help = "Run the maintenance job scheduler in the foreground (one per deployment; stops on SIGTERM/SIGINT)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll", type=float, default=5.0, help="Seconds between attempts to take the leader lock (default 5)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = GracefulStop()
        stop.install()
        lock = leader_lock()
        if not lock.wait(stop=stop.requested, poll_s=options["poll"]):
            logger.info("Stopped before becoming the scheduler")
            return
        lost = threading.Event()

        def on_lost() -> None:
            lost.set()
            stop.request()

        try:
            scheduler = scheduler_create(blocking=True)
            stop.attach(scheduler)
            lock.keep_alive(on_lost=on_lost)
            logger.info(
                "Scheduler running (UTC) with jobs: %s",
                ", ".join(f"{s.name} [{s.schedule}]" for s in jobs.JOBS.values()),
            )
            scheduler.start()  # blocks until shutdown
        finally:
            lock.release()
        if lost.is_set():
            raise CommandError("Lost the scheduler leader lock; exiting so that the supervisor restarts this process.")
        logger.info("Scheduler stopped")
