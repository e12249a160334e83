"""Settings from the environment and .env: the file fills in, the environment wins, an empty value
means the default, and email links follow the address the server listens on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.env import env_bool, env_list, env_str, load_env_file, local_base_url

ROOT = Path(__file__).resolve().parents[2]


def settings_value(expression: str, env: dict[str, str]) -> str:
    """Evaluate ``expression`` on the settings of a fresh process with exactly ``env``."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    code = f"import django, sys; django.setup(); from django.conf import settings; sys.stdout.write(str({expression}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base | {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_env_file_fills_in_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('PUBLIC_BASE_URL=https://from-file.example\nJWT_ISSUER="from file"\n')
    value = settings_value(
        "(settings.PUBLIC_BASE_URL, settings.SIMPLE_JWT['ISSUER'])",
        {"ENV_FILE": str(env_file), "JWT_ISSUER": "from-environment"},
    )
    assert value == "('https://from-file.example', 'from-environment')"


def test_project_env_file_is_read_by_default(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("RAGCHAT_TEST_ONLY=read\n")
    monkeypatch.delenv("ENV_FILE", raising=False)
    monkeypatch.delenv("RAGCHAT_TEST_ONLY", raising=False)
    load_env_file(tmp_path)
    assert os.environ.pop("RAGCHAT_TEST_ONLY") == "read"


def test_empty_env_file_setting_reads_no_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("RAGCHAT_TEST_ONLY=read\n")
    monkeypatch.setenv("ENV_FILE", "")
    monkeypatch.delenv("RAGCHAT_TEST_ONLY", raising=False)
    load_env_file(tmp_path)
    assert "RAGCHAT_TEST_ONLY" not in os.environ


def test_copied_env_example_keeps_every_default(tmp_path):
    """`cp .env.example .env` must run the embedded default exactly as no .env at all does."""
    names = (
        "DEBUG", "USE_FAKE_REDIS", "CHAT_HISTORY_CACHE", "EMAIL_BACKEND", "SERVER_EMAIL",
        "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "ALLOWED_HOSTS", "PUBLIC_BASE_URL", "REDIS_URL",
    )  # fmt: skip
    expression = f"[settings.VECTOR_INDEX_DIR.resolve()] + [(n, str(getattr(settings, n))) for n in {names!r}]"
    without = settings_value(expression, {"ENV_FILE": "", "DEBUG": "false", "SECRET_KEY": "k" * 50})
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    with_example = settings_value(expression, {"ENV_FILE": str(env_file), "DEBUG": "false", "SECRET_KEY": "k" * 50})
    assert with_example == without


@pytest.mark.parametrize(
    ("reader", "raw", "default", "expected"),
    [
        (env_bool, "", True, True),
        (env_bool, "false", True, False),
        (env_str, "", "dflt", "dflt"),
        (env_list, "", "a,b", ["a", "b"]),
    ],
)
def test_empty_value_means_default(monkeypatch, reader: Any, raw: str, default: Any, expected: Any):
    monkeypatch.setenv("RAGCHAT_TEST_ONLY", raw)
    assert reader("RAGCHAT_TEST_ONLY", default) == expected


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 9000, "http://127.0.0.1:9000"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("", 8000, "http://127.0.0.1:8000"),
        ("::", 8001, "http://[::1]:8001"),
        ("chat.lan", 80, "http://chat.lan:80"),
    ],
)
def test_local_base_url(host, port, url):
    assert local_base_url(host, port) == url


def test_links_follow_the_port_when_public_base_url_is_unset():
    assert settings_value("settings.PUBLIC_BASE_URL", {"ENV_FILE": "", "PORT": "9000"}) == "http://127.0.0.1:9000"
    assert (
        settings_value("settings.PUBLIC_BASE_URL", {"ENV_FILE": "", "PORT": "9000", "PUBLIC_BASE_URL": "https://x.io/"})
        == "https://x.io"
    )


def test_runserver_listens_on_host_and_port_from_settings(settings, monkeypatch):
    from django.contrib.staticfiles.management.commands.runserver import Command as Base

    from background_tasks.management.commands.runserver import Command

    seen: dict[str, Any] = {}
    monkeypatch.setattr(Base, "handle", lambda self, *args, **options: seen.update(options))
    settings.HOST, settings.PORT = "127.0.0.1", 9000
    Command().handle(addrport="", use_ipv6=False)
    assert seen["addrport"] == "127.0.0.1:9000"
    Command().handle(addrport="8123", use_ipv6=False)
    assert seen["addrport"] == "8123"


def test_serve_script_reads_env_file_without_overriding(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=from-file\nREDIS_URL='redis://x:1/0'\n")
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-m", "config.env"],
        cwd=ROOT,
        env=base | {"ENV_FILE": str(env_file), "SECRET_KEY": "from-environment"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "export REDIS_URL=redis://x:1/0\n", result.stderr
