"""Throughput of the ingestion sanitiser (``rag/ingestion/sanitize.py``) on the shipped help centre
and on hostile inputs built to make regular expressions backtrack.

Usage: .venv/bin/python bench/bench_sanitize.py [--size 200000] [--runs 3]

Every input is a document someone could upload (uploads are capped at 10 MB). The figure that
matters is that each stays in the same range of characters per second as ordinary text, i.e. the
time grows linearly with the size; before the patterns were made possessive, 120 kB of one
unclosed tag took minutes. Prints the median over runs of each case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.ingestion.sanitize import strip_markup  # noqa: E402


def cases(size: int) -> dict[str, str]:
    def repeat(unit: str) -> str:
        return unit * max(1, size // len(unit))

    shipped = "\n\n".join(path.read_text() for path in sorted((ROOT / "documents").rglob("*.md")))
    return {
        "shipped help centre": shipped,
        "one unclosed tag with handlers": "<a " + repeat("onx=1 "),
        "unclosed quoted attributes": "<img " + repeat('a="b '),
        "a bracket then spaces": "<" + repeat(" "),
        "angle brackets": repeat("<"),
        "tags": repeat("<b>"),
        "a run of backticks": repeat("`") + "x",
        "backtick runs of two lengths": repeat("` `` "),
        "unclosed code fences": repeat("```a\n"),
        "unclosed scripts": repeat("<script>"),
        "nested tags": "<im" * (size // 20) + "<b>" + "g onerror=x>" * (size // 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000, help="characters of each hostile input")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':34s} {'chars':>9s} {'ms':>9s} {'M chars/s':>10s}")
    for name, text in cases(args.size).items():
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            strip_markup(text)
            timings.append(time.perf_counter() - started)
        median = statistics.median(timings)
        print(f"{name:34s} {len(text):9d} {median * 1000:9.1f} {len(text) / median / 1e6:10.2f}")


if __name__ == "__main__":
    main()
