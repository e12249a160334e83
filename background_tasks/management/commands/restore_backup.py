"""``manage.py restore_backup FILE [--dry-run] [--force]``: bring a backup back.

The manifest's signature (HMAC under BACKUP_SIGNING_KEY or the SECRET_KEY) and every checksum are
verified first; a corrupted archive is refused and nothing is touched. The
database must be empty unless ``--force``, which wipes the backed-up tables first (in the same
transaction: a failed restore leaves the database as it was). Then the vector store is rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from background_tasks.services.backups import BackupError
from background_tasks.services.restore import backup_restore


class Command(BaseCommand):
    help = "Verify a backup archive and restore it into an empty database, then rebuild the vector store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="A ragchat-backup-*.tar.gz archive.")
        parser.add_argument("--dry-run", action="store_true", help="Verify and report; change nothing.")
        parser.add_argument(
            "--force", action="store_true", help="Wipe users, chats and documents already in the database first."
        )
        parser.add_argument(
            "--allow-unsigned",
            action="store_true",
            help="Accept an archive without a signature (written before format version 2); only one you trust.",
        )
        parser.add_argument(
            "--skip-index", action="store_true", help="Do not rebuild the vector store (run `manage.py reindex` later)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            counts = backup_restore(
                path=path,
                force=options["force"],
                dry_run=options["dry_run"],
                rebuild_index=not options["skip_index"],
                allow_unsigned=options["allow_unsigned"],
            )
        except BackupError as exc:
            raise CommandError(f"Restore refused: {exc.detail}") from exc
        verb = "Would restore" if options["dry_run"] else "Restored"
        self.stdout.write(f"{verb} from {path.name} (checksums verified):")
        for key, value in counts.items():
            self.stdout.write(f"  {key}: {value}")
