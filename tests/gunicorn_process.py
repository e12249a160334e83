"""Starting and stopping a real gunicorn in a test: wait until it answers, stop it cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def wait_until_serving(
    probe: Callable[[], object], process: subprocess.Popen[bytes], log: Path, *, timeout_s: float, interval_s: float
) -> None:
    """Call ``probe`` until it stops raising ``OSError``; fail with the server's log if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
            time.sleep(interval_s)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
