"""Time to build the BM25 index of a knowledge base, with and without the parts of compound words.

Usage: .venv/bin/python bench/bench_lexical_build.py [DATABASE] [--runs N]

DATABASE is a knowledge base's SQLite file (default ``var/eval/kb/merged/db.sqlite3``, the 10,563
chunks that ``EVAL_MERGED=1 make eval-retrieval`` ingests). Each process builds this index once per
scope and again after a write to what the scope reads (``rag.services.retrieval._LexicalHolder``),
so this is the pause the first search after an ingest takes. Prints the median of ``--runs``
builds each way (tokenising, BM25 and the speller) and their ratio.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", nargs="?", default=str(ROOT / "var/eval/kb/merged/db.sqlite3"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from rag import lexical

    with sqlite3.connect(f"file:{args.database}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT id, text FROM rag_chunk ORDER BY id").fetchall()
    ids, texts = [row[0] for row in rows], [row[1] for row in rows]
    with_parts = lexical.index_terms

    def timed(terms: object) -> float:
        lexical.index_terms = terms  # type: ignore[assignment]
        times = []
        for _ in range(args.runs):
            lexical.stem.cache_clear()
            started = time.perf_counter()
            lexical.LexicalIndex.build(ids, texts)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    plain = timed(lexical.tokenize)
    parts = timed(with_parts)
    print(f"{len(texts)} chunks, median of {args.runs} builds")
    print(f"whole words only:            {plain:.2f} s")
    print(f"with compound words' parts:  {parts:.2f} s  (ratio {parts / plain:.2f})")


if __name__ == "__main__":
    main()
