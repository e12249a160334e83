"""``manage.py ingest PATH... [--category C] [--glob '*.txt'] [--workspace ID]``: ingest files and
folders into the shared knowledge base, or into one workspace."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from rag import categories
from rag.files import file_to_input, iter_files
from rag.services.ingestion import DocumentInput, documents_ingest
from utils.exceptions import ServiceError
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Ingest files and folders (recursively) into the knowledge base."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--category", type=_category, help=f"Category for every file: {categories.RULE}.")
        parser.add_argument("--glob", default=None, help="Only files matching this pattern, e.g. '*.md'.")
        parser.add_argument(
            "--workspace", type=int, default=None, help="Id of the workspace that owns the documents (default: shared)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for path in options["paths"]:
            if not path.exists():
                raise CommandError(f"{path} does not exist.")
        workspace = options["workspace"]
        if workspace is not None and not Workspace.objects.filter(pk=workspace).exists():
            raise CommandError(f"There is no workspace {workspace}.")
        files = list(iter_files(options["paths"], options["glob"]))
        summary = ingest_files(
            files, category=options["category"], stdout=self.stdout, stderr=self.stderr, workspace_id=workspace
        )
        self.stdout.write(summary)


def _category(value: str) -> str:
    try:
        return categories.check_category(value)
    except categories.InvalidCategory as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def ingest_files(
    files: list[tuple[Path, Path]], *, category: str | None, stdout: Any, stderr: Any, workspace_id: int | None = None
) -> str:
    """Ingest the files in batches, report unreadable or refused files one by one (the others are
    ingested all the same), and return the summary line."""
    started = time.perf_counter()
    failed = 0
    bar = tqdm(total=len(files), unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)

    def inputs() -> Iterator[DocumentInput]:
        nonlocal failed
        for file, base in files:
            try:
                item = file_to_input(file, base, category)
            except ServiceError as exc:
                failed += 1
                stderr.write(f"{file}: {exc.detail}")
                continue
            finally:
                bar.update(1)
            yield dataclasses.replace(item, workspace_id=workspace_id)

    def refused(item: DocumentInput, exc: ServiceError) -> None:
        nonlocal failed
        failed += 1
        stderr.write(f"{item.source}: {exc.detail}")

    try:
        results = documents_ingest(items=inputs(), on_error=refused)
    finally:
        bar.close()
    counts = Counter(result.status for result in results)
    chunks = sum(result.chunks for result in results if result.status != "unchanged")
    seconds = time.perf_counter() - started
    rate = chunks / seconds if seconds else 0.0
    return (
        f"documents: {len(results)} ({counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {failed} failed), chunks: {chunks}, "
        f"seconds: {seconds:.1f}, chunks/s: {rate:.1f}"
    )
