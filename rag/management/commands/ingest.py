"""``manage.py ingest PATH... [--category C] [--glob '*.txt']``: ingest files and folders."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from rag import categories
from rag.files import file_to_input, iter_files
from rag.services.ingestion import document_ingest
from utils.exceptions import ServiceError


class Command(BaseCommand):
    help = "Ingest files and folders (recursively) into the knowledge base."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--category", type=_category, help=f"Category for every file: {categories.RULE}.")
        parser.add_argument("--glob", default=None, help="Only files matching this pattern, e.g. '*.md'.")

    def handle(self, *args: Any, **options: Any) -> None:
        for path in options["paths"]:
            if not path.exists():
                raise CommandError(f"{path} does not exist.")
        files = list(iter_files(options["paths"], options["glob"]))
        summary = ingest_files(files, category=options["category"], stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(summary)


def _category(value: str) -> str:
    try:
        return categories.check_category(value)
    except categories.InvalidCategory as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def ingest_files(files: list[tuple[Path, Path]], *, category: str | None, stdout: Any, stderr: Any) -> str:
    """Ingest each file, report failures per file, and return the summary line."""
    started = time.perf_counter()
    counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    chunks = 0
    bar = tqdm(files, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)
    for file, base in bar:
        try:
            result = document_ingest(item=file_to_input(file, base, category))
        except ServiceError as exc:
            counts["failed"] += 1
            stderr.write(f"{file}: {exc.detail}")
            continue
        counts[result.status] += 1
        if result.status != "unchanged":
            chunks += result.chunks
    seconds = time.perf_counter() - started
    rate = chunks / seconds if seconds else 0.0
    documents = len(files) - counts["failed"]
    return (
        f"documents: {documents} ({counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['failed']} failed), chunks: {chunks}, "
        f"seconds: {seconds:.1f}, chunks/s: {rate:.1f}"
    )
