"""Child process that parses one PDF under resource limits (run by ``rag.ingestion.limits``).

Not a Django module and imported by nothing: ``python pdf_worker.py MAX_PAGES MAX_CHARS CPU_S
MEMORY_BYTES`` reads the PDF on stdin and writes one JSON object on stdout, either
``{"pages": [...], "title": ..., "page_count": n}`` or ``{"error": code, "detail": ...}``. It limits
itself first (CPU seconds and address space, via ``setrlimit``), so a PDF that amplifies its text
or its objects without end is stopped by the kernel (SIGXCPU, MemoryError) even if the parent's
wall-clock kill came too late.
"""

from __future__ import annotations

import io
import json
import resource
import sys
from typing import Any


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def parse(data: bytes, max_pages: int, max_chars: int) -> dict[str, Any]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        return {"error": "encrypted", "detail": "The PDF is password-protected."}
    count = len(reader.pages)
    if count > max_pages:
        return {"error": "too_many_pages", "detail": str(count)}
    pages: list[str] = []
    total = 0
    for page in reader.pages:
        text = page.extract_text() or ""
        total += len(text)
        if total > max_chars:
            return {"error": "too_much_text", "detail": str(total)}
        pages.append(text)
    title = reader.metadata.title if reader.metadata else None
    return {"pages": pages, "title": str(title) if title else None, "page_count": count}


def main() -> int:
    max_pages, max_chars, cpu_seconds, memory_bytes = (int(arg) for arg in sys.argv[1:5])
    _limit(cpu_seconds, memory_bytes)
    data = sys.stdin.buffer.read()
    try:
        result = parse(data, max_pages, max_chars)
    except MemoryError:
        result = {"error": "too_complex", "detail": "memory limit"}
    except RecursionError:
        result = {"error": "too_complex", "detail": "nesting too deep"}
    except Exception as exc:  # boundary: every parser failure means "unreadable", reported as data
        result = {"error": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:500]}
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
