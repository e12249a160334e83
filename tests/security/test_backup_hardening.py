"""Issue 13 item 11: backups were readable by everyone, restore was unbounded, archives unsigned.

Archives (every password hash) were 0644 in a 0755 folder; a 412 KB archive took 2 GB to restore;
an archive edited with recomputed checksums was restored as if written by us.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from background_tasks.services import backups
from background_tasks.services.backups import BackupCorrupted, backup_create, backups_list
from background_tasks.services.restore import backup_restore, backup_verify
from tests.factories import UserFactory
from users.models import User

pytestmark = pytest.mark.django_db
USERS = "data/users.User.jsonl"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    UserFactory.create(username="ann", is_staff=False)
    backup_create(directory=tmp_path / "backups", keep=8)
    [path] = backups_list(directory=tmp_path / "backups")
    return path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def write(path: Path, content: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def forge(source: Path, target: Path, edit: Callable[[dict[str, bytes]], None], *, sign: bool) -> Path:
    """Copy an archive with members edited and the manifest's checksums and counts recomputed,
    as an attacker would; ``sign`` also signs it with our key (what only we can do)."""
    content = members(source)
    edit(content)
    manifest = json.loads(content["manifest.json"])
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256(content[name]).hexdigest()
    manifest["counts"]["users.User"] = content[USERS].count(b"\n")
    content["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    if sign:
        content["manifest.sig"] = backups.signature_document(content["manifest.json"])
    return write(target, content)


def make_staff(content: dict[str, bytes]) -> None:
    content[USERS] = content[USERS].replace(b'"is_staff": false', b'"is_staff": true')


def test_archives_are_owner_only_in_an_owner_only_folder(tmp_path):
    UserFactory.create()
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)  # noqa: S103 (the permissive folder an older version left)
    old = folder / "ragchat-backup-20200101T000000.000000Z.tar.gz"  # written before this fix
    old.write_bytes(b"old")
    os.chmod(old, 0o644)
    previous = os.umask(0o022)
    try:
        backup_create(directory=folder, keep=8)
    finally:
        os.umask(previous)
    assert mode(folder) == 0o700
    assert [mode(p) for p in backups_list(directory=folder)] == [0o600, 0o600]
    with tarfile.open(backups_list(directory=folder)[-1], "r:gz") as tar:
        assert {m.mode for m in tar.getmembers()} == {0o600}


def test_an_archive_edited_with_recomputed_checksums_is_refused(archive, tmp_path):
    forged = forge(archive, tmp_path / "forged.tar.gz", make_staff, sign=False)
    with pytest.raises(BackupCorrupted, match="signature does not match"):
        backup_restore(path=forged, force=True, rebuild_index=False)
    assert not User.objects.filter(is_staff=True).exists()
    # The control: the same edit signed with our key passes verification (the check can fail).
    signed = forge(archive, tmp_path / "signed.tar.gz", make_staff, sign=True)
    assert backup_verify(path=signed)["counts"]["users.User"] == 1


def test_an_archive_signed_with_another_key_or_unsigned_is_refused(archive, tmp_path, settings):
    settings.BACKUP_SIGNING_KEY = "another-key"
    with pytest.raises(BackupCorrupted, match="signature does not match"):
        backup_verify(path=archive)
    settings.BACKUP_SIGNING_KEY = ""
    unsigned = members(archive)
    del unsigned["manifest.sig"]
    write(tmp_path / "unsigned.tar.gz", unsigned)
    with pytest.raises(BackupCorrupted, match="not signed"):
        backup_verify(path=tmp_path / "unsigned.tar.gz")
    # An archive from before signing can still be restored on purpose.
    assert backup_verify(path=tmp_path / "unsigned.tar.gz", allow_unsigned=True)["counts"]["users.User"] == 1


def test_a_row_that_inflates_without_end_is_refused_in_bounded_memory(archive, tmp_path, settings):
    settings.BACKUP_RESTORE_MAX_ROW_BYTES = 1 << 20

    def bomb(content: dict[str, bytes]) -> None:  # 48 MB of one line, about 50 KB compressed
        row = b'{"model": "users.user", "pk": 99, "fields": {"username": "' + b"a" * (48 << 20)
        content[USERS] = content[USERS] + row

    forged = forge(archive, tmp_path / "bomb.tar.gz", bomb, sign=True)  # even a validly signed one
    assert forged.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(BackupCorrupted, match="BACKUP_RESTORE_MAX_ROW_BYTES"):
            backup_restore(path=forged, force=True, rebuild_index=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # a few rows' worth, not the 48 MB line (nor its parse)
    assert User.objects.count() == 1


def test_too_many_or_too_large_members_are_refused_before_reading_them(archive, tmp_path, settings):
    crowd = members(archive) | {f"filler/{n}": b"" for n in range(2000)}
    with pytest.raises(BackupCorrupted, match="BACKUP_RESTORE_MAX_MEMBERS"):
        backup_verify(path=write(tmp_path / "crowd.tar.gz", crowd))
    settings.BACKUP_RESTORE_MAX_MEMBER_BYTES = 100
    with pytest.raises(BackupCorrupted, match="BACKUP_RESTORE_MAX_MEMBER_BYTES"):
        backup_verify(path=archive)


def test_links_and_duplicate_members_are_refused(archive, tmp_path):
    content = members(archive)
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("data/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(BackupCorrupted, match="not a regular file"):
        backup_verify(path=path)
    twice = tmp_path / "twice.tar.gz"
    with tarfile.open(twice, "w:gz") as tar:
        for name, data in [*content.items(), (USERS, content[USERS])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupCorrupted, match="appears twice"):
        backup_verify(path=twice)
