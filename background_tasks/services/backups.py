"""Backups: a versioned, checksummed ``.tar.gz`` of users, workspaces (members, invitations, API-key
hashes), chats and documents (restore: ``restore``).

Layout: ``manifest.json`` (format version, created_at, app version, applied migrations, row
count and SHA-256 per member) and one JSON-lines file per table under ``data/``, written by
Django's serializer with full microsecond timestamps (its stock encoder keeps milliseconds only).

Chunks are included rather than re-cut on restore: their ids are the vector ids, and a restore
must give back exactly what was backed up even if the chunker has changed since. Vectors are not
included: they depend on the configured embedder, so the restore rebuilds the vector store.
Account, JWT and idempotency tokens are left out on purpose: restored users log in again.

Since format version 2 the archive also holds ``manifest.sig``: an HMAC-SHA256 of the manifest's
exact bytes under ``BACKUP_SIGNING_KEY`` (default: derived from ``SECRET_KEY``). The manifest
carries every member's SHA-256, so an archive edited with recomputed checksums is refused. The
archives hold every password hash: they are written 0600 in a 0700 folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from utils.exceptions import ServiceError

logger = logging.getLogger(__name__)

FORMAT = "ragchat-backup"
FORMAT_VERSION = 2  # 2: signed (manifest.sig)
ARCHIVE_PREFIX = "ragchat-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
FILE_MODE = 0o600  # archives hold every password hash: owner only
DIR_MODE = 0o700
# Parents before children: the order of writing, of restoring and (reversed) of wiping.
TABLES: dict[str, str] = {
    "auth.Group": "groups",
    "users.User": "users",
    "workspaces.Workspace": "workspaces",
    "workspaces.Membership": "memberships",
    "workspaces.Invitation": "invitations",
    "workspaces.ApiKey": "api_keys",
    "rag.Document": "documents",
    "rag.Chunk": "chunks",
    "chat.ChatSession": "sessions",
    "chat.ChatMessage": "messages",
}
# Their many-to-many links (groups, permissions) travel by name: permission ids differ between databases.
NATURAL_KEYS = {"auth.Group", "users.User"}
PREFETCH = {"auth.Group": ("permissions__content_type",), "users.User": ("groups", "user_permissions__content_type")}
MIGRATION_APPS = ("auth", "users", "workspaces", "rag", "chat")
# Archives written before workspaces existed lack these tables (and their sessions a workspace);
# restore still reads them, giving every user a personal workspace that holds their sessions.
WORKSPACE_TABLES = ("workspaces.Workspace", "workspaces.Membership", "workspaces.Invitation", "workspaces.ApiKey")
STALE_TEMPORARY_S = 86_400


class BackupError(ServiceError):
    code = "backup_error"


class BackupCorrupted(BackupError):
    code = "backup_corrupted"


class RestoreRefused(BackupError):
    status_code = 409
    code = "restore_refused"


class ExactJSONEncoder(DjangoJSONEncoder):
    """Django's encoder, but datetimes and times keep their microseconds."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            text = o.isoformat()
            return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
        if isinstance(o, dt.time) and o.utcoffset() is None:
            return o.isoformat()
        return super().default(o)


def signing_key() -> bytes:
    """``BACKUP_SIGNING_KEY``, or a key derived from ``SECRET_KEY`` (never the secret key itself)."""
    if settings.BACKUP_SIGNING_KEY:
        return settings.BACKUP_SIGNING_KEY.encode()
    return hashlib.sha256(b"ragchat-backup-signing:" + settings.SECRET_KEY.encode()).digest()


def manifest_signature(manifest_bytes: bytes) -> str:
    return hmac.new(signing_key(), manifest_bytes, hashlib.sha256).hexdigest()


def signature_document(manifest_bytes: bytes) -> bytes:
    body = {"algorithm": SIGNATURE_ALGORITHM, "signature": manifest_signature(manifest_bytes)}
    return json.dumps(body, sort_keys=True).encode()


def _owner_only_directory(directory: Path) -> None:
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    try:
        os.chmod(directory, DIR_MODE)  # also a folder made before backups were private
    except PermissionError:  # a folder we do not own (a mount point): the archives are 0600 anyway
        logger.warning("Backup folder %s could not be made owner-only (0700)", directory)


def member_name(label: str) -> str:
    return f"data/{label}.jsonl"


def has_workspaces(manifest: dict[str, Any]) -> bool:
    """Whether the archive was written with the workspaces app (its migrations are recorded)."""
    return "workspaces" in (manifest.get("migrations") or {})


def tables_of(manifest: dict[str, Any]) -> list[str]:
    """The tables an archive holds, parents first: all of ``TABLES``, less the workspaces tables
    for an archive written before they existed."""
    return [label for label in TABLES if has_workspaces(manifest) or label not in WORKSPACE_TABLES]


def _app_version() -> str:
    return str(settings.SPECTACULAR_SETTINGS.get("VERSION", "unknown"))


def applied_migrations() -> dict[str, list[str]]:
    applied = MigrationRecorder(connection).applied_migrations()
    return {app: sorted(name for label, name in applied if label == app) for app in MIGRATION_APPS}


def _digest(path: Path) -> tuple[str, int]:
    sha, lines = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
            lines += block.count(b"\n")
    return sha.hexdigest(), lines


@contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent view of every table: a message never points at a session missing from the dump.

    PostgreSQL: a read-only REPEATABLE READ transaction, which blocks nobody. SQLite (the embedded
    default): the project's IMMEDIATE transactions hold the write lock while the dump runs.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _dump(work: Path) -> tuple[dict[str, int], dict[str, str]]:
    counts, digests = {}, {}
    with _snapshot():
        for label in TABLES:
            model = apps.get_model(label)
            path = work / member_name(label)
            path.parent.mkdir(parents=True, exist_ok=True)
            queryset = model._default_manager.order_by("pk").prefetch_related(*PREFETCH.get(label, ()))
            with path.open("w", encoding="utf-8") as stream:
                serializers.serialize(
                    "jsonl",
                    queryset.iterator(chunk_size=2000),
                    stream=stream,
                    cls=ExactJSONEncoder,
                    use_natural_foreign_keys=label in NATURAL_KEYS,
                )
            digests[member_name(label)], counts[label] = _digest(path)
    return counts, digests


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temporaries(directory: Path) -> None:
    """Leftovers of a backup killed mid-write (never mistaken for archives: they start with a dot)."""
    cutoff = time.time() - STALE_TEMPORARY_S
    for path in directory.glob(f".{ARCHIVE_PREFIX}*"):
        if path.stat().st_mtime < cutoff:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            logger.info("Removed stale backup temporary %s", path.name)


def backups_list(*, directory: Path) -> list[Path]:
    """Archives in ``directory``, oldest first (their names sort by creation time)."""
    return sorted(directory.glob(f"{ARCHIVE_PREFIX}*{ARCHIVE_SUFFIX}"))


def backups_rotate(*, directory: Path, keep: int) -> int:
    """Delete all but the newest ``keep`` archives (at least one is always kept)."""
    archives = backups_list(directory=directory)
    for path in archives:  # archives written before they were private
        if path.stat().st_mode & 0o077:
            os.chmod(path, FILE_MODE)
    old = archives[: max(len(archives) - max(keep, 1), 0)]
    for path in old:
        path.unlink(missing_ok=True)
        logger.info("Removed old backup %s", path.name)
    return len(old)


def _private_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = FILE_MODE, 0, 0, "", ""
    return info


def _write_archive(target: Path, work: Path, members: list[str]) -> None:
    """Write to a hidden temporary name in the same directory, then rename: no half archive ever
    carries the final name, whatever the crash."""
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        # Created owner-only, never readable by others even for a moment (whatever the umask).
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
            for name in [MANIFEST, SIGNATURE, *members]:
                tar.add(work / name, arcname=name, recursive=False, filter=_private_member)
        _fsync(temporary)
        os.replace(temporary, target)
        _fsync(target.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def backup_create(*, directory: Path, keep: int, now: dt.datetime | None = None) -> dict[str, int]:
    """Write a new archive to ``directory`` and rotate; returns rows per table and the size."""
    now = now or timezone.now()
    _owner_only_directory(directory)
    _remove_stale_temporaries(directory)
    target = directory / f"{ARCHIVE_PREFIX}{now.astimezone(dt.UTC):%Y%m%dT%H%M%S.%fZ}{ARCHIVE_SUFFIX}"
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{ARCHIVE_PREFIX}work-") as work_dir:
        work = Path(work_dir)
        counts, digests = _dump(work)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": now.isoformat(),
            "app_version": _app_version(),
            "django_version": django.get_version(),
            "database_vendor": connection.vendor,
            "migrations": applied_migrations(),
            "counts": counts,
            "files": digests,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (work / MANIFEST).write_bytes(manifest_bytes)
        (work / SIGNATURE).write_bytes(signature_document(manifest_bytes))
        _write_archive(target, work, list(digests))
    removed = backups_rotate(directory=directory, keep=keep)
    logger.info("Backup %s written (%d bytes); %d old archive(s) removed", target.name, target.stat().st_size, removed)
    return {TABLES[label]: n for label, n in counts.items()} | {"bytes": target.stat().st_size, "removed": removed}
