"""``manage.py runserver`` that also runs the maintenance scheduler in the serving process.

Only the process that serves starts it (with the autoreloader, the child with ``RUN_MAIN=true``;
or the one process under ``--noreload``), only when ``DEV_SCHEDULER`` is on, and only while it
holds the Redis leader lock: two dev servers, or a dev server next to ``runscheduler``, never
both schedule. It subclasses staticfiles' runserver so static serving behaves as before.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserverCommand

from background_tasks.scheduler import DevScheduler
from config.startup import debug_exposure_warning


def serves_in_this_process(options: dict[str, Any]) -> bool:
    return not options.get("use_reloader", True) or os.environ.get("RUN_MAIN") == "true"


class Command(StaticfilesRunserverCommand):
    help = f"{StaticfilesRunserverCommand.help} Also runs the maintenance scheduler (DEV_SCHEDULER)."

    def handle(self, *args: Any, **options: Any) -> None:
        # Without an address, the one the settings read (HOST, PORT from the environment or .env),
        # which PUBLIC_BASE_URL's default is derived from too.
        if not options.get("addrport"):
            host = settings.HOST
            if ":" in host and not host.startswith("["):
                host, options["use_ipv6"] = f"[{host}]", True
            options["addrport"] = f"{host}:{settings.PORT}"
        super().handle(*args, **options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        address, port = getattr(self, "addr", ""), getattr(self, "port", "")  # set by runserver's handle()
        if settings.DEBUG and (warning := debug_exposure_warning(address, port)):
            self.stderr.write(warning, style_func=self.style.ERROR, ending="")
        dev_scheduler = None
        if settings.DEV_SCHEDULER and serves_in_this_process(options):
            dev_scheduler = DevScheduler()
            dev_scheduler.start()
            # The autoreloader ends this process with sys.exit() from another thread: atexit
            # still runs, so the leader lock is released for the next child at once.
            atexit.register(dev_scheduler.stop)
        try:
            super().inner_run(*args, **options)
        finally:
            if dev_scheduler is not None:
                dev_scheduler.stop()
