"""Knowledge-base categories: names the knowledge base's owner chooses, validated, never altered.

A category is 1-50 characters: ASCII letters, digits, spaces and hyphens, starting and ending with
a letter or digit ("FAQ", "Garden", "Release notes", "How-to"). A name outside these rules is
refused where it comes in (the API, a front matter, ``ingest --category``), never replaced by
another one. Pure: no Django.
"""

from __future__ import annotations

import re

MAX_LENGTH = 50
DEFAULT = "Other"
# The same rule for the server (Python) and the schema (ECMA-262): ASCII only, no class shorthands.
PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 -]{0,48}[A-Za-z0-9])?$"
RULE = "1-50 letters, digits, spaces or hyphens, starting and ending with a letter or digit"
_CATEGORY = re.compile(PATTERN)


class InvalidCategory(ValueError):
    """A category name outside the rules; the message says which name and why."""


def check_category(value: object) -> str:
    """``value`` itself if it is a valid category name; ``InvalidCategory`` otherwise."""
    if not isinstance(value, str) or not _CATEGORY.fullmatch(value):
        raise InvalidCategory(f"{value!r} is not a valid category: use {RULE}.")
    return value
