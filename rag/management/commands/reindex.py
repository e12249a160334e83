"""``manage.py reindex``: rebuild the active vector store from the database."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from rag.models import Chunk
from rag.providers.factory import get_embedder, get_vector_store
from rag.services.ingestion import documents_rechunk, index_rebuild


class Command(BaseCommand):
    help = "Re-embed every chunk with the configured embedder and rebuild the vector store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rechunk",
            action="store_true",
            help="Split every document again with the current chunker first (after an upgrade of chunking).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        total = Chunk.objects.count()
        embedder, store = get_embedder(), get_vector_store()
        what = "documents, split again" if options["rechunk"] else f"{total} chunks"
        self.stdout.write(f"Rebuilding {store.name} with {embedder.name} ({embedder.dimension}-d): {what}")
        started = time.perf_counter()
        with tqdm(total=total, unit="chunk", disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
            if options["rechunk"]:
                store.reset(embedder_name=embedder.name, dimension=embedder.dimension)
                done = documents_rechunk(progress=bar.update)
            else:
                done = index_rebuild(progress=bar.update)
        seconds = time.perf_counter() - started
        self.stdout.write(f"chunks: {done}, seconds: {seconds:.1f}, chunks/s: {done / seconds if seconds else 0:.1f}")
