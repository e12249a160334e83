"""Issue 13, item 2: no signing key in the source. On the embedded default each installation
generates its own key once and keeps it in VAR_DIR (0600); every manage.py command uses it;
production (a database or Redis named, DEBUG off) still needs SECRET_KEY; debug mode bound to a
non-loopback address says so at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import BaseCommand, call_command

from config.startup import debug_exposure_warning, embedded_secret_key, is_loopback

ROOT = Path(__file__).resolve().parents[2]
PRINT_KEY = "from django.conf import settings; import sys; sys.stdout.write(settings.SECRET_KEY)"


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """manage.py with nothing of this test run's environment but PATH, HOME, LANG and ``env``."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=90
    )


def key_of(var_dir: Path, **env: str) -> str:
    result = run_manage("shell", "--no-imports", "-c", PRINT_KEY, env={"VAR_DIR": str(var_dir), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_embedded_default_generates_its_own_key_once_and_keeps_it_private(tmp_path):
    var_dir = tmp_path / "relocated" / "var"
    first = key_of(var_dir, DEBUG="true")  # as make run starts
    assert len(first) >= 50
    key_file = var_dir / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Every later manage.py command, with DEBUG or without, signs with the same key ...
    assert key_of(var_dir) == first
    assert key_of(var_dir, DEBUG="true") == first
    # ... and another installation has a key of its own: nothing is shared through the source.
    assert key_of(tmp_path / "other") != first


def test_no_secret_key_is_written_in_the_source():
    """The key the old code fell back to, and any other literal one, is gone from settings."""
    source = (ROOT / "config" / "settings.py").read_text()
    assert "django-insecure" not in source
    assert 'SECRET_KEY = "' not in source


def test_manage_py_commands_need_no_environment(tmp_path):
    """`manage.py ingest --help` with no environment at all used to end in a SECRET_KEY traceback."""
    result = run_manage("ingest", "--help", env={"VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "ingest" in result.stdout


def test_production_still_requires_an_explicit_secret_key(tmp_path):
    env = {"VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()
    result = run_manage("check", env=env | {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": ""})
    assert "SECRET_KEY must be set" in result.stderr


def test_a_key_file_others_can_read_is_made_private(tmp_path):
    key = embedded_secret_key(tmp_path)
    (tmp_path / "secret_key").chmod(0o644)
    assert embedded_secret_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_debug_on_a_non_loopback_address_warns_loudly_at_start(settings, capsys):
    settings.DEBUG, settings.DEV_SCHEDULER = True, False
    with (
        mock.patch("django.core.management.commands.runserver.run") as serve,  # nothing is bound
        mock.patch.object(BaseCommand, "check_migrations"),  # nor the database touched
    ):
        call_command("runserver", "0.0.0.0:8123", use_reloader=False, skip_checks=True)
        call_command("runserver", "127.0.0.1:8123", use_reloader=False, skip_checks=True)
    assert serve.call_count == 2
    err = capsys.readouterr().err
    assert err.count("DEBUG is on and this server listens on 0.0.0.0:8123") == 1
    assert "127.0.0.1:8123, reachable" not in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        *[("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True)],
        *[("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False)],
    ],
)
def test_which_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback
    assert bool(debug_exposure_warning(host, 8000)) is not loopback
