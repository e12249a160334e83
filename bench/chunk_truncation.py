"""Share of chunks the local embedder truncates (over its 256-token window), old chunker against new.

Usage: .venv/bin/python bench/chunk_truncation.py [CORPUS_DIR ...]   (default: var/eval/corpora/*)

The old chunker (800-character windows, before chunking by structure) is read from git history
(commit f59583e) and run on each file's raw text, as ingestion did then; the new one is today's
``chunk_document``. Tokens are counted with the model's own tokenizer, [CLS] and [SEP] included.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "f59583e"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    from rag.files import file_to_input, iter_files
    from rag.providers.local_embedder import count_tokens
    from rag.services.ingestion import chunk_document
    from utils.exceptions import ServiceError

    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:rag/ingestion/chunking.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("old_chunking", handle.name)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_chunking"] = old
    spec.loader.exec_module(old)

    corpora = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "var" / "eval" / "corpora").iterdir())
    for root in corpora:
        old_tokens: list[int] = []
        new_tokens: list[int] = []
        for file, base in iter_files([root]):
            try:
                item = file_to_input(file, base)
            except ServiceError:
                continue
            raw = file.read_text(errors="replace")
            old_tokens += [count_tokens(c) + 2 for c in old.split_into_chunks(title=item.title, text=raw)]
            new_tokens += [count_tokens(c) + 2 for c in chunk_document(title=item.title, content=item.content)]

        def share(tokens: list[int]) -> str:
            over = sum(1 for t in tokens if t > 256) / max(len(tokens), 1)
            return f"{len(tokens)} chunks, {over:.1%} over 256 tokens, mean {sum(tokens) / max(len(tokens), 1):.0f}"

        print(f"{root.name}: old {share(old_tokens)}; new {share(new_tokens)}")


if __name__ == "__main__":
    main()
