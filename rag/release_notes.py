"""Release notes and changelogs, told from a document's title and path, and questions about them.

A documentation folder ingested whole keeps its release notes: one page per version in many
projects (``releases/``, ``releasenotes/``, ``announce/``), a long changelog in others. Each names
the features it touched in the same words as the guides, so a how-to question finds the line that
says a feature changed as readily as the page that explains it (Pillow's docs with their 67
release-note pages: dev MRR@3 .778 without them, .689 with them). Retrieval ranks them after the
other documents, unless the question is about versions or changes ("what's new in 2.0", "when was
this added", "is it deprecated", a version number); ``RAG_RELEASE_NOTES_LAST=false`` turns that off.

Told by convention, with no constant to tune: a folder or file named as projects name their
history (``releases/``, ``changelog/``, ``CHANGES.md``, ``news.rst``...), a title that says so
("Django 5.0 release notes", "Changelog", "What's new in 2.0", a version number such as "9.0.1" or
"Version 2.3"), or a category that does ("Release notes"). English words only; a page named
otherwise competes as any other.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import PurePosixPath

# Folder names, and file names without their extension, that hold a project's history.
HISTORY_NAMES = frozenset({
    "releases", "release-notes", "release_notes", "releasenotes", "changelog", "changelogs", "changes",
    "news", "announce", "announcements", "whatsnew", "whats-new", "whats_new",
})  # fmt: skip
# "history/" is a folder of changelogs (Celery's); a page named "history" is as often the story of
# the project (pytest's), so only the folder counts.
HISTORY_FOLDERS = HISTORY_NAMES | {"history"}
_TITLE = re.compile(
    r"\b(?:release notes?|change ?logs?|change history|what['\u2019]?s new)\b"
    r"|^\s*(?:v|version |release )?\d+(?:\.\d+)+\b",
    re.I,
)
# A question about versions, releases or changes: their own vocabulary, or a version number. Not
# "change", "new" or "history" alone: "can I change my password", "start a new conversation" and
# "browse my chat history" are how-to questions.
_ABOUT_CHANGES = re.compile(
    r"\bwhat['\u2019]?s new\b|\bnew (?:in|features?)\b|\b(?:what|which) (?:version|release)s?\b"
    r"|\bchang(?:ed|es) (?:in|since|between)\b|\bwhat (?:has |have )?changed\b|\bchange ?logs?\b"
    r"|\brelease notes?\b|\breleased\b|\bdeprecat\w*|\bintroduced\b|\bno longer\b"
    r"|\b(?:was|were|been|got|is|are) (?:removed|added|dropped|renamed)\b|\b(?:removed|added) in\b"
    r"|\bsince (?:version |v)?\d|\bupgrad\w*|\bmigrat(?:e|ing|ion) (?:to|from)\b|\bwhen (?:was|were|did)\b"
    r"|\b(?:version|release|change) history\b|\bv?\d+\.\d+",
    re.I,
)


@lru_cache(maxsize=4096)
def is_release_notes(title: str, source: str, category: str = "") -> bool:
    """Whether a document is release notes or a changelog, by its path, its title or its category
    (an admin's "Release notes" or "Changelog")."""
    parts = [part.lower() for part in PurePosixPath(source.replace("\\", "/")).parts]
    if parts:
        folders, name = parts[:-1], PurePosixPath(parts[-1]).stem
        if any(part in HISTORY_FOLDERS for part in folders) or name in HISTORY_NAMES:
            return True
    return bool(_TITLE.search(title) or _TITLE.search(category))


def asks_about_changes(text: str) -> bool:
    """Whether a question is about versions, releases or changes, which release notes answer."""
    return bool(_ABOUT_CHANGES.search(text))
