"""Start-up helpers of ``config.settings`` and the dev server: the embedded default's own secret
key, and the warning that debug mode is reachable from other hosts.

No key is written in the source: on the embedded default each installation generates its own,
once, and keeps it in ``VAR_DIR/secret_key`` (mode 0600), so that ``make run``, every other
``manage.py`` command and the dev server all sign with the same key that nobody else knows.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
_MIN_KEY_CHARS = 50


def embedded_secret_key(var_dir: Path) -> str:
    """This installation's random key, generated at the first call and read afterwards.

    Written to a private temporary file and linked into place, so two processes starting at once
    (the dev server and its autoreloader) end up with the same key, never a half-written one.
    """
    path = var_dir / SECRET_KEY_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        temporary = var_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(64) + "\n")
            with contextlib.suppress(FileExistsError):  # another process linked its key first: read that one
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        sys.stderr.write(f"WARNING: {path} was readable by others (mode {mode:o}); it is now 0600.\n")
    key = path.read_text().strip()
    if len(key) < _MIN_KEY_CHARS:
        raise ImproperlyConfigured(
            f"{path} holds no usable secret key (fewer than {_MIN_KEY_CHARS} characters); delete it to "
            "generate a new one, or set SECRET_KEY."
        )
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name, as given to runserver or gunicorn) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


def debug_exposure_warning(host: str, port: str | int) -> str:
    """The banner printed when debug mode serves on an address other hosts can reach, else ''."""
    if is_loopback(host):
        return ""
    line = "!" * 78
    return (
        f"{line}\n"
        f"!! DEBUG is on and this server listens on {host}:{port}, reachable from other machines.\n"
        "!! Debug mode shows error details, and its settings are meant for this machine only.\n"
        "!! Bind to 127.0.0.1 (the default), or run the production stack (make serve, DEBUG off).\n"
        f"{line}\n"
    )
