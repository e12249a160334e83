"""Where things live: the arrows the layout forbids (issue 14, item 12).

``chat`` reaches retrieval and answering through ``rag.services`` and the value types of
``rag.types``, never a provider module; ``rag.providers`` (the generators, embedders and stores)
and ``rag.answering`` (the answer contract) share only ``rag.types``. Every import is read from the
source (module level and inside functions), so a lazy import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (package whose modules are checked, module prefix none of them may import)
FORBIDDEN = [
    ("chat", "rag.providers"),
    ("rag/providers", "rag.answering"),
    ("rag/answering", "rag.providers"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``from rag import providers`` names ``rag.providers``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def _violates(imported: str, prefix: str) -> bool:
    return imported == prefix or imported.startswith(prefix + ".")


def forbidden_arrows(package: str, prefix: str) -> list[tuple[str, str]]:
    return sorted(
        (str(path.relative_to(ROOT)), imported)
        for path in (ROOT / package).rglob("*.py")
        for imported in imported_modules(path)
        if _violates(imported, prefix)
    )


@pytest.mark.parametrize(("package", "prefix"), FORBIDDEN)
def test_no_forbidden_arrow(package, prefix):
    assert (ROOT / package).is_dir()
    assert forbidden_arrows(package, prefix) == []


def test_the_check_sees_every_form_of_import(tmp_path, monkeypatch):
    """The parser is what the rule rests on: each spelling of a forbidden import is caught."""
    package = tmp_path / "chat"
    package.mkdir()
    (package / "__init__.py").write_text("")
    spellings = {
        "plain.py": "import rag.providers.mistral\n",
        "from_module.py": "from rag.providers.base import Generator\n",
        "from_package.py": "from rag import providers\n",
        "lazy.py": "def f():\n    from rag.providers.factory import get_generator\n    return get_generator\n",
    }
    for name, source in spellings.items():
        (package / name).write_text(source)
    (package / "allowed.py").write_text("from rag.types import Turn\nfrom rag.services.answering import Answer\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = {path.rpartition("/")[2] for path, _ in forbidden_arrows("chat", "rag.providers")}
    assert found == set(spellings)


def test_relative_imports_resolve_against_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    providers = tmp_path / "rag" / "providers"
    providers.mkdir(parents=True)
    (providers / "mine.py").write_text("from ..answering import citations\n")
    assert forbidden_arrows("rag/providers", "rag.answering") == [
        ("rag/providers/mine.py", "rag.answering"),
        ("rag/providers/mine.py", "rag.answering.citations"),
    ]
