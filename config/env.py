"""Typed readers for environment variables, used only by ``config.settings``.

An empty variable means its default, as an unfilled line of ``.env.example`` does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_env_file(base_dir: Path) -> None:
    """Read ``ENV_FILE`` (default: ``.env`` in the project directory) into the environment, when it
    exists; a variable already in the environment keeps its value. ``ENV_FILE=`` (empty) reads none."""
    path = os.environ.get("ENV_FILE", str(base_dir / ".env"))
    if path and Path(path).is_file():
        load_dotenv(path, override=False)


def local_base_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` of a server bound to ``host``; a wildcard or empty host reads as loopback."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)  # noqa: S104
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.") from exc


def env_list(name: str, default: str = "") -> list[str]:
    """Comma-separated list; blanks dropped."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_admins(name: str) -> list[tuple[str, str]]:
    """``"Ann <ann@example.com>, bob@example.com"`` → Django's ``ADMINS`` list of (name, email)."""
    admins = []
    for item in env_list(name):
        if "<" in item and item.endswith(">"):
            person, _, email = item[:-1].partition("<")
            admins.append((person.strip() or email.strip(), email.strip()))
        else:
            admins.append((item, item))
    return admins


def _print_exports() -> None:
    """``python -m config.env``: the ``.env`` variables the environment lacks, as shell ``export``
    lines, for scripts that check settings before Django starts (scripts/serve.sh)."""
    import re
    import shlex

    from dotenv import dotenv_values

    path = os.environ.get("ENV_FILE", str(Path(__file__).resolve().parent.parent / ".env"))
    if not path or not Path(path).is_file():
        return
    for name, value in dotenv_values(path).items():
        if value is not None and name not in os.environ and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            sys.stdout.write(f"export {name}={shlex.quote(value)}\n")


if __name__ == "__main__":
    _print_exports()
