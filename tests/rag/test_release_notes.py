"""Release notes and changelogs told by their path or title; questions about changes told by their words."""

from __future__ import annotations

import pytest

from rag.release_notes import asks_about_changes, is_release_notes


@pytest.mark.parametrize(
    ("title", "source"),
    [
        ("Django 5.0 release notes", "releases/5.0.txt"),
        ("9.0.1", "releasenotes/9.0.1.rst"),
        ("Change history for Celery 5.5", "history/changelog-5.5.rst"),
        ("Release notes", "news.rst"),
        ("Changes", "CHANGES.md"),
        ("pytest-8.0.0", "announce/release-8.0.0.rst"),
        ("What's new in SQLAlchemy 2.0?", "changelog/whatsnew_20.rst"),
        ("What\u2019s new in 3.0", "docs/three.md"),  # a typographic apostrophe
        ("Changelog", "docs/anything.md"),  # the title alone says it
        ("Version 2.3", "notes.md"),  # so does a title that is a version
        ("v1.4.2", "notes.md"),
        ("Changes", "docs\\changes\\1.0.rst"),  # a Windows path
    ],
)
def test_release_notes_are_told_by_their_folder_file_name_or_title(title, source):
    assert is_release_notes(title, source)


def test_or_by_a_category_an_admin_gave_them():
    assert is_release_notes("Spring update", "spring-update.md", "Release notes")
    assert not is_release_notes("Spring update", "spring-update.md", "Guide")


@pytest.mark.parametrize(
    ("title", "source"),
    [
        ("History", "history.rst"),  # the story of a project, not its changelog
        ("Browse your chat history", "guides/browse-chat-history.md"),
        ("Periodic tasks", "userguide/periodic-tasks.rst"),
        ("Upgrading to the new API", "guides/upgrading.md"),
        ("Python 3.12 support", "installation/python-support.rst"),  # a version inside, not the title
        ("", ""),
    ],
)
def test_other_pages_are_not(title, source):
    assert not is_release_notes(title, source)


@pytest.mark.parametrize(
    "question",
    [
        "what's new in 2.0?",
        "what\u2019s new",
        "when was async support added",
        "is this setting deprecated",
        "which version removed PILLOW_VERSION",
        "how do I upgrade from 1.4",
        "what changed in the admin",
        "When did they drop Python 2",
    ],
)
def test_questions_about_versions_and_changes(question):
    assert asks_about_changes(question)


@pytest.mark.parametrize(
    "question",
    [
        "how do I run a task every monday",
        "crop an image to a square",
        "chnage my pasword",
        "can I change the email address on my account",
        "how do I start a new conversation with the bot",
        "which python versions can I use",
        "what does ?before= do on the history endpoint",
        "remove every job that's waiting in the queue",
    ],
)
def test_other_questions(question):
    assert not asks_about_changes(question)
