"""Ingestion throughput end to end: ``manage.py ingest`` of a folder into a fresh knowledge base.

Usage: .venv/bin/python bench/bench_ingest.py CORPUS_DIR [--runs 3] [--glob '*.rst']

Each run is a new process on a new SQLite database and FAISS index (extraction, chunking,
embedding, database and index writes, all included). The corpus is ingested once (1×) and as
two copies side by side (2×, the same files under two folders, so twice the chunks); the script
prints chunks/s for each (median of ``--runs``) and the ratio of the 2× time to the 1× time:
linear ingestion gives 2.0. The evaluation corpora (``make eval-retrieval`` fetches them into
var/eval/corpora/) are a ready corpus; any folder of .md/.rst/.txt/.html files will do.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"chunks: (\d+), seconds: ([\d.]+)")


def ingest_once(folders: list[Path], glob: str | None) -> tuple[int, float]:
    """Chunks written and seconds taken by one ``manage.py ingest`` in a fresh VAR_DIR."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as work:
        env = {
            **os.environ,
            "VAR_DIR": work,
            "DATABASE_URL": f"sqlite:///{work}/db.sqlite3",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnop"),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("REDIS_URL", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
        command = [*manage, "ingest", *map(str, folders)]
        if glob:
            command += ["--glob", glob]
        output = subprocess.run(command, env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    match = SUMMARY.search(output)
    if match is None:
        raise SystemExit(f"unexpected ingest output: {output!r}")
    return int(match.group(1)), float(match.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--glob", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as twice:
        for copy in ("a", "b"):
            shutil.copytree(args.corpus, Path(twice) / copy)
        sizes = {"1x": [args.corpus], "2x": [Path(twice)]}
        seconds: dict[str, list[float]] = {"1x": [], "2x": []}
        chunks: dict[str, int] = {}
        for run in range(1, args.runs + 1):
            for label, folders in sizes.items():
                count, took = ingest_once(folders, args.glob)
                chunks[label] = count
                seconds[label].append(took)
                print(f"run {run} {label}: {count} chunks in {took:.1f} s ({count / took:.1f} chunks/s)", flush=True)
    for label in sizes:
        median = statistics.median(seconds[label])
        print(f"{label}: {chunks[label]} chunks, median {median:.1f} s, {chunks[label] / median:.1f} chunks/s")
    ratio = statistics.median(seconds["2x"]) / statistics.median(seconds["1x"])
    print(f"time 2x / time 1x: {ratio:.2f} (linear: 2.00)")


if __name__ == "__main__":
    main()
