""".env.example lists every variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_variable_is_documented():
    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|float|list|admins)\(\s*"([A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert read, "no env reads found: the pattern is out of date"
    assert read - documented == set()
