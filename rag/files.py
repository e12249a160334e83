"""Turning files and folders into ``DocumentInput``s for ingestion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rag.ingestion.extract import SUPPORTED_EXTENSIONS, extract_text
from rag.models import Document
from rag.services.ingestion import DocumentInput


def iter_files(paths: list[Path], pattern: str | None = None) -> Iterator[tuple[Path, Path]]:
    """(file, base) pairs: each supported file under the given paths, with the folder it was found in."""
    for path in paths:
        if path.is_file():
            yield path, path.parent
            continue
        for file in sorted(path.rglob(pattern or "*")):
            if file.is_file() and file.suffix.lower() in SUPPORTED_EXTENSIONS:
                yield file, path


def file_to_input(file: Path, base: Path, category: str | None = None) -> DocumentInput:
    """Read one file; ``source`` is its path relative to ``base``."""
    extracted = extract_text(file.name, file.read_bytes())
    meta = dict(extracted.metadata or {})
    chosen = category or str(meta.pop("category", "") or "") or Document.Category.OTHER
    if chosen not in Document.Category.values:
        chosen = Document.Category.OTHER
    title = extracted.title or file.stem.replace("-", " ").replace("_", " ").capitalize()
    meta.pop("title", None)
    return DocumentInput(
        title=title,
        content=extracted.text,
        category=chosen,
        source=file.relative_to(base).as_posix(),
        metadata=meta,
    )
