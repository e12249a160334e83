"""Turning files and folders into ``DocumentInput``s for ingestion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rag import categories
from rag.ingestion.extract import SUPPORTED_EXTENSIONS, extract_text
from rag.services.ingestion import DocumentInput
from utils.exceptions import ValidationFailed

# Folders that hold a build's output, a theme's templates or installed packages, not pages: a docs
# folder ingested after `make html` would otherwise hold every page twice (`_build/html/`), and
# Sphinx themes' Jinja templates (`_templates/`, `_theme/`) would be read as pages.
SKIPPED_FOLDERS = frozenset({
    "_build", "_static", "_templates", "_theme", "_themes", "_ext", "_site", "node_modules", "__pycache__",
    "site-packages", "venv",
})  # fmt: skip


def skipped(relative: Path) -> bool:
    """Whether a file found under a folder is left out: hidden (a name starting with "."), or in one
    of ``SKIPPED_FOLDERS``."""
    return any(part.startswith(".") for part in relative.parts) or any(
        part in SKIPPED_FOLDERS for part in relative.parts[:-1]
    )


def iter_files(paths: list[Path], pattern: str | None = None) -> Iterator[tuple[Path, Path]]:
    """(file, base) pairs: each supported file under the given paths, with the folder it was found in.

    A file named on its own is always taken; under a folder, hidden files and folders and the
    folders of ``SKIPPED_FOLDERS`` are not.
    """
    for path in paths:
        if path.is_file():
            yield path, path.parent
            continue
        for file in sorted(path.rglob(pattern or "*")):
            if file.is_file() and file.suffix.lower() in SUPPORTED_EXTENSIONS and not skipped(file.relative_to(path)):
                yield file, path


def file_to_input(file: Path, base: Path, category: str | None = None) -> DocumentInput:
    """Read one file; ``source`` is its path relative to ``base``."""
    extracted = extract_text(file.name, file.read_bytes())
    meta = dict(extracted.metadata or {})
    chosen = category or str(meta.pop("category", "") or "") or categories.DEFAULT
    meta.pop("category", None)
    try:
        categories.check_category(chosen)
    except categories.InvalidCategory as exc:  # refused, never replaced by another category
        raise ValidationFailed(f"front matter: {exc}", code="invalid_category") from exc
    title = extracted.title or file.stem.replace("-", " ").replace("_", " ").capitalize()
    meta.pop("title", None)
    return DocumentInput(
        title=title,
        content=extracted.text,
        category=chosen,
        source=file.relative_to(base).as_posix(),
        metadata=meta,
    )
