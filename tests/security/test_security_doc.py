"""docs/SECURITY.md maps each OWASP item to its tests: every test it names exists, and every test in
this package is named there, so the table cannot drift from the suite."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "SECURITY.md"
REFERENCE = re.compile(r"`((?:[\w/]+\.py)?)::(\w+)`|`([\w/]+\.py)`")


def referenced() -> set[tuple[str, str]]:
    """(file under tests/, test name) pairs; ``::name`` continues the last file named before it."""
    found: set[tuple[str, str]] = set()
    current = ""
    for match in REFERENCE.finditer(DOC.read_text()):
        path, name, bare = match.groups()
        if Path(path or bare or "").name.startswith("test_"):  # a test module, not a source file
            current = path or bare
        if name and name.startswith("test_"):
            found.add((current, name))
    return found


def defined(path: str) -> set[str]:
    return set(re.findall(r"^def (test_\w+)", (TESTS / path).read_text(), re.MULTILINE))


def test_every_test_the_document_names_exists():
    missing = [(path, name) for path, name in referenced() if name not in defined(path)]
    assert missing == []


def test_every_security_test_is_in_the_document():
    named = referenced()
    absent = [
        (f"security/{file.name}", name)
        for file in sorted((TESTS / "security").glob("test_*.py"))
        for name in sorted(defined(f"security/{file.name}"))
        if (f"security/{file.name}", name) not in named and file.name != Path(__file__).name
    ]
    assert absent == []
