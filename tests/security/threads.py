"""Real threads against the real database, for the race tests of the security suite.

On PostgreSQL the threads share the test database. On SQLite the test database lives in memory
with a shared cache, where a second writer fails at once with "database table is locked" instead
of waiting as it does on a file: so the ``threaded_db`` fixture copies the test database to a file
(WAL, IMMEDIATE transactions, as the embedded default runs) and points new connections at it. The
test's own thread keeps its connection to the in-memory copy, so run everything touching the
database in threads (``in_thread``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connection

T = TypeVar("T")


@pytest.fixture
def threaded_db(transactional_db: None, tmp_path: Path) -> Iterator[None]:
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    copy = sqlite3.connect(tmp_path / "threads.sqlite3")
    connection.connection.backup(copy)
    copy.close()
    original = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = str(tmp_path / "threads.sqlite3")  # shared by new connections
    try:
        yield
    finally:
        connection.settings_dict["NAME"] = original


def in_thread(function: Callable[[], T]) -> T:
    """Run ``function`` in a new thread with a connection of its own, closed afterwards."""
    result = in_threads([function])[0]
    if isinstance(result, Exception):
        raise result
    return result


def in_threads(functions: list[Callable[[], T]], *, together: bool = True) -> list[T]:
    """Run each function in its own thread, released at the same moment; results in order.

    An exception is returned in place of a result, so that one failing thread shows the others.
    """
    barrier = threading.Barrier(len(functions))
    results: list[Any] = [None] * len(functions)

    def run(index: int) -> None:
        try:
            if together:
                barrier.wait(timeout=60)
            results[index] = functions[index]()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
