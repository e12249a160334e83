"""Render deploy/nginx.conf.template for one stack: ``nginx_conf.py LISTEN UPSTREAM RUN_DIR``.

LISTEN is ``host:port`` (what clients reach), UPSTREAM is gunicorn's address as nginx names it
(``unix:/path/gunicorn.sock`` or ``127.0.0.1:8001``), RUN_DIR a folder of this stack (pid,
temporary files; created). Prints the path of the rendered ``nginx.conf``; start nginx with
``nginx -e stderr -p RUN_DIR -c RUN_DIR/nginx.conf``. Standard library only (used by
scripts/serve.sh, the tests and bench/). Knobs, from the environment (seconds unless said):

    NGINX_CLIENT_HEADER_TIMEOUT=10  request line and headers must arrive within this
    NGINX_CLIENT_BODY_TIMEOUT=20    longest pause between two reads of a request body
    NGINX_SEND_TIMEOUT=30           longest pause between two writes of an answer to a client
    NGINX_KEEPALIVE_TIMEOUT=15      idle keep-alive client connections are closed after this
    NGINX_PROXY_TIMEOUT=120         gunicorn silent this long: 504 (an answer stream's pauses too)
    NGINX_WORKER_PROCESSES=1        nginx processes (1 serves thousands of connections)
    NGINX_WORKER_CONNECTIONS=1024   connections per nginx process (clients and gunicorn together)
    NGINX_UPSTREAM_KEEPALIVE=16     idle connections to gunicorn kept open for reuse
    NGINX_ACCESS_LOG=off            or a file path
    NGINX_ERROR_LOG=stderr          or a file path
    NGINX_USER=root                 the workers' user when started by root (else: the starting user)
    MAX_UPLOAD_BYTES=10485760       the application's upload limit; bodies up to it plus 64 KB of
                                    multipart framing pass, larger ones are a 413 here
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
MULTIPART_SLACK = 64 * 1024
# Below gunicorn's limit_request_line and limit_request_field_size (8190): nginx answers first.
HEADER_BUFFER = 8000


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _user_directive() -> str:
    """Started by root, nginx's workers would run as ``nobody`` and could not reach RUN_DIR or
    gunicorn's socket: keep the starting user unless NGINX_USER names one (better: do not start
    the stack as root)."""
    if os.geteuid() != 0:
        return "# (started unprivileged: the workers keep this user)"
    return f"user {_env('NGINX_USER', 'root')};"


def render(listen: str, upstream: str, run_dir: Path, **overrides: str) -> Path:
    """Write ``run_dir/nginx.conf`` (and its temporary folders); returns its path."""
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    max_body = int(_env("MAX_UPLOAD_BYTES", str(10 * 1024 * 1024))) + MULTIPART_SLACK
    values = {
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "RUN_DIR": str(run_dir),
        "CLIENT_HEADER_TIMEOUT": _env("NGINX_CLIENT_HEADER_TIMEOUT", "10"),
        "CLIENT_BODY_TIMEOUT": _env("NGINX_CLIENT_BODY_TIMEOUT", "20"),
        "SEND_TIMEOUT": _env("NGINX_SEND_TIMEOUT", "30"),
        "KEEPALIVE_TIMEOUT": _env("NGINX_KEEPALIVE_TIMEOUT", "15"),
        "PROXY_TIMEOUT": _env("NGINX_PROXY_TIMEOUT", "120"),
        "WORKER_PROCESSES": _env("NGINX_WORKER_PROCESSES", "1"),
        "WORKER_CONNECTIONS": _env("NGINX_WORKER_CONNECTIONS", "1024"),
        "UPSTREAM_KEEPALIVE": _env("NGINX_UPSTREAM_KEEPALIVE", "16"),
        "ACCESS_LOG": _env("NGINX_ACCESS_LOG", "off"),
        "ERROR_LOG": _env("NGINX_ERROR_LOG", "stderr"),
        "HEADER_BUFFER": str(HEADER_BUFFER),
        "USER_DIRECTIVE": _user_directive(),
        "MAX_BODY": str(max_body),
        "MAX_BODY_HUMAN": f"{max_body / 1024 / 1024:.1f} MB",
    } | overrides
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    if "@" in "".join(line.split("#")[0] for line in text.splitlines() if "@" in line.split("#")[0]):
        raise SystemExit("nginx_conf: a placeholder of the template was not filled")
    target = run_dir / "nginx.conf"
    target.write_text(text)
    return target


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    sys.stdout.write(f"{render(sys.argv[1], sys.argv[2], Path(sys.argv[3]))}\n")


if __name__ == "__main__":
    main()
