"""``manage.py populate_documents``: load the shipped knowledge base from ``documents/``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from rag.files import iter_files
from rag.management.commands.ingest import ingest_files
from rag.models import Document


class Command(BaseCommand):
    help = "Load the shipped help-centre documents (idempotent: unchanged files are skipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the knowledge base already has documents."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Document.objects.exists():
            self.stdout.write("Knowledge base already populated; skipping.")
            return
        files = list(iter_files([settings.DOCUMENTS_DIR], "*.md"))
        self.stdout.write(ingest_files(files, category=None, stdout=self.stdout, stderr=self.stderr))
