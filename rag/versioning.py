"""The knowledge base's version and the database's identity, both kept in the database.

Every write to the knowledge base bumps ``KnowledgeBaseState`` in its own transaction, so the
new version becomes visible exactly when the new chunks do, to every process that shares the
database: the dev server, each gunicorn worker, a CLI ``ingest``. Each process compares the
version with the one its in-memory copies (the FAISS index, the lexical index) were built at,
and reloads them when it moved. Reading it is one primary-key lookup, made at most once per
``RAG_INDEX_CHECK_S`` per process, so hot paths stay fast; Redis plays no part in it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from rag.models import KnowledgeBaseState

logger = logging.getLogger(__name__)

Version = tuple[int, str]  # (counter, token of the change): a rolled-back change's token never recurs


def _state() -> KnowledgeBaseState:
    """The singleton row; the first migrate creates it, and a flushed database gets a new one."""
    state, _ = KnowledgeBaseState.objects.get_or_create(
        pk=KnowledgeBaseState.SINGLETON_PK, defaults={"token": uuid.uuid4().hex}
    )
    return state


def database_fingerprint() -> dict[str, str]:
    """Which database this process uses: its engine, its name and the id drawn at its first migrate.

    A vector index records it when it is built; an index recording another one is refused.
    """
    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor == "sqlite" and name and ":memory:" not in name and not name.startswith("file:"):
        name = str(Path(name).resolve())
    return {"engine": connection.vendor, "name": name, "database_id": str(_state().database_id)}


class DatabaseVersionBoard:
    """The knowledge base's version (``KnowledgeBaseState``) with a per-process read throttle.

    A value read inside a transaction is returned but not remembered: it may be a change that
    is not committed yet (or never will be), which other threads must not take as current.
    """

    def __init__(self, *, interval_s: float | None = None) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._remembered: Version | None = None
        self._read_at = 0.0

    def get(self) -> Version | None:
        """The current version, or None if the database cannot tell (the caller keeps what it has)."""
        interval = settings.RAG_INDEX_CHECK_S if self._interval_s is None else self._interval_s
        started = time.monotonic()
        with self._lock:
            if self._remembered is not None and started - self._read_at < interval:
                return self._remembered
        try:
            row = KnowledgeBaseState.objects.filter(pk=KnowledgeBaseState.SINGLETON_PK).values_list("version", "token")
            value: Version = row.first() or (0, "")
        except DatabaseError as exc:
            logger.warning("Knowledge base version unavailable (%s); serving the loaded indexes", exc)
            return None
        if not connection.in_atomic_block:
            with self._lock:
                self._remembered, self._read_at = value, started
        return value

    def bump(self) -> Version:
        """Record a change in the current transaction; readers see it when the transaction commits."""
        token = uuid.uuid4().hex
        changed = {"version": F("version") + 1, "token": token, "updated_at": timezone.now()}
        with transaction.atomic():
            if not KnowledgeBaseState.objects.filter(pk=KnowledgeBaseState.SINGLETON_PK).update(**changed):
                _state()
                KnowledgeBaseState.objects.filter(pk=KnowledgeBaseState.SINGLETON_PK).update(**changed)
            version = KnowledgeBaseState.objects.values_list("version", flat=True).get(
                pk=KnowledgeBaseState.SINGLETON_PK
            )
        # This process reads the new version at its next look, not after the throttle interval.
        self.expire()
        transaction.on_commit(self.expire)
        return version, token

    def expire(self) -> None:
        """Make the next ``get`` read the database."""
        with self._lock:
            self._remembered = None


KNOWLEDGE_BASE_VERSION = DatabaseVersionBoard()


def knowledge_base_state() -> dict[str, object]:
    """The version and when it last changed (for health and diagnostics)."""
    state = _state()
    return {"version": state.version, "changed_at": state.updated_at}
