"""gunicorn's access log, with account tokens and credentials masked in what it writes.

The request line (``%(r)s``), path, query string and referrer go through ``utils.logging.redact``:
a verification link is a path with a live token in it, and gunicorn logs every request's path.
Selected in ``config/gunicorn.conf.py`` (``logger_class``). Imports no Django.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from utils.logging import redact

_REDACTED_ATOMS = ("r", "U", "q", "f")


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in _REDACTED_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
