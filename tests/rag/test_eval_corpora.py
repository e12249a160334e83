"""The evaluation corpora fetcher, on a hand-made sdist: no network (pip is never run here)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from rag.eval import corpora
from rag.eval.corpora import Corpus, CorpusError, by_name, fetch

FILES = {
    "demo-1.0/docs/index.rst": "Demo\n====\n\nWelcome.\n",
    "demo-1.0/docs/guide/install.md": "# Install\n\npip install demo\n",
    "demo-1.0/docs/notes.txt": "Notes.\n",
    "demo-1.0/docs/changelog.rst": "Changes\n=======\n",
    "demo-1.0/docs/conf.py": "project = 'demo'\n",
    "demo-1.0/docs/_static/theme.rst": "Theme\n=====\n",
    "demo-1.0/docs/../../escape.rst": "Nope\n====\n",
    "demo-1.0/src/demo/readme.rst": "Not docs\n========\n",
}


def make_sdist(folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "demo-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Corpus, Path]:
    downloads = tmp_path / "downloads"
    _, sha = make_sdist(downloads)

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run when a verified archive is already there")

    monkeypatch.setattr(subprocess, "run", no_pip)
    return Corpus(name="demo", package="demo", version="1.0", sha256=sha, exclude=("changelog.rst",)), downloads


def test_fetch_extracts_only_the_wanted_docs_pages(sdist, tmp_path):
    corpus, downloads = sdist
    line = fetch(corpus, dest_root=tmp_path / "corpora", downloads=downloads)
    assert "3 files" in line and "sha256 ok" in line
    found = sorted(p.relative_to(tmp_path / "corpora" / "demo").as_posix() for p in (tmp_path / "corpora").rglob("*"))
    assert [p for p in found if not p.startswith(".")] == ["guide", "guide/install.md", "index.rst", "notes.txt"]
    assert not (tmp_path / "escape.rst").exists()


def test_fetch_again_is_a_no_op_until_the_pin_changes(sdist, tmp_path):
    corpus, downloads = sdist
    dest_root = tmp_path / "corpora"
    fetch(corpus, dest_root=dest_root, downloads=downloads)
    (dest_root / "demo" / "index.rst").write_text("edited", encoding="utf-8")
    assert "up to date" in fetch(corpus, dest_root=dest_root, downloads=downloads)
    assert (dest_root / "demo" / "index.rst").read_text(encoding="utf-8") == "edited"
    wider = Corpus(name="demo", package="demo", version="1.0", sha256=corpus.sha256)  # changelog no longer excluded
    assert "4 files" in fetch(wider, dest_root=dest_root, downloads=downloads)
    assert (dest_root / "demo" / "index.rst").read_text(encoding="utf-8").startswith("Demo")


def test_an_archive_with_the_wrong_checksum_is_refused(sdist, tmp_path, monkeypatch):
    _, downloads = sdist
    tampered = Corpus(name="demo", package="demo", version="1.0", sha256="0" * 64)
    completed = subprocess.CompletedProcess(args=[], returncode=0, stdout="", stderr="")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: completed)  # "downloads" the same file again
    with pytest.raises(CorpusError, match="SHA-256"):
        fetch(tampered, dest_root=tmp_path / "corpora", downloads=downloads)
    assert not (tmp_path / "corpora" / "demo").exists()


def test_a_failed_download_is_reported(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess(args=[], returncode=1, stdout="", stderr="No matching distribution")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: failed)
    corpus = Corpus(name="demo", package="demo", version="9.9", sha256="0" * 64)
    with pytest.raises(CorpusError, match="No matching distribution"):
        fetch(corpus, dest_root=tmp_path / "corpora", downloads=tmp_path / "downloads")


def test_the_download_asks_pip_for_the_sdist_of_the_package_alone(tmp_path, monkeypatch):
    """``--no-binary :all:`` made pip build the sdist's build backend (setuptools, Cython) from source
    to read its metadata: minutes for SQLAlchemy instead of seconds."""
    seen: list[list[str]] = []

    def run(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(args=command, returncode=1, stdout="", stderr="offline")

    monkeypatch.setattr(subprocess, "run", run)
    corpus = Corpus(name="demo", package="demo", version="9.9", sha256="0" * 64)
    with pytest.raises(CorpusError):
        fetch(corpus, dest_root=tmp_path / "corpora", downloads=tmp_path / "downloads")
    command = seen[0]
    assert command[command.index("--no-binary") + 1] == "demo" and ":all:" not in command
    assert command[-1] == "demo==9.9" and "--no-deps" in command


def test_corpora_are_pinned_and_named_uniquely():
    names = [corpus.name for corpus in corpora.CORPORA]
    assert len(names) >= 3 and len(set(names)) == len(names)
    assert "django" not in names  # Django's docs are the held-out check: never evaluated on
    assert all(len(corpus.sha256) == 64 and corpus.version[0].isdigit() for corpus in corpora.CORPORA)
    assert by_name(["flask"])[0].name == "flask"
    with pytest.raises(CorpusError, match="unknown corpus"):
        by_name(["nope"])


def test_list_prints_the_names(capsys):
    assert corpora.main(["list"]) == 0
    assert capsys.readouterr().out.split() == [corpus.name for corpus in corpora.CORPORA]


def test_with_history_keeps_the_release_notes_and_nothing_else(sdist, tmp_path):
    corpus, downloads = sdist
    dated = Corpus(
        name="demo",
        package="demo",
        version="1.0",
        sha256=corpus.sha256,
        exclude=("changelog.rst", "notes.txt"),
        history=("changelog.rst",),
    )
    assert "2 files" in fetch(dated, dest_root=tmp_path / "plain", downloads=downloads)
    assert "3 files" in fetch(dated.with_history(), dest_root=tmp_path / "history", downloads=downloads)
    assert (tmp_path / "history" / "demo" / "changelog.rst").exists()
    assert not (tmp_path / "history" / "demo" / "notes.txt").exists()


def test_every_history_pattern_is_one_the_corpus_leaves_out():
    for corpus in corpora.CORPORA:
        assert set(corpus.history) <= set(corpus.exclude), corpus.name
