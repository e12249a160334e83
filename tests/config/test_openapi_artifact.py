"""docs/openapi.yaml is the schema the code serves: regenerate it with `make schema` after an API change."""

from __future__ import annotations

import io
from pathlib import Path

import yaml
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "openapi.yaml"


def test_committed_schema_is_current():
    generated = io.StringIO()
    call_command("spectacular", "--validate", stdout=generated)
    current = yaml.safe_load(generated.getvalue())
    committed = yaml.safe_load(COMMITTED.read_text())
    assert committed == current, "docs/openapi.yaml is stale: run `make schema` and commit it"
    assert COMMITTED.read_text().strip() == generated.getvalue().strip(), "run `make schema` (formatting differs)"
