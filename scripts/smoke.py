"""End-to-end smoke test of a running server, over HTTP only (scripts/ci_smoke.sh runs it on CI).

    python scripts/smoke.py --base-url http://127.0.0.1:8000 --mail-dir var/mail

The flow a new user follows: register, open the verification link from the email (read from the
server's file email backend: EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend,
EMAIL_FILE_PATH=--mail-dir), log in, open a session, ask a question that the shipped knowledge base
answers (the answer must cite sources), read the history, log out, and check that the refresh token
no longer works. It also loads the Swagger UI and the admin login page with every /static/ file
they reference, which must be served (WhiteNoise) with DEBUG off. Exits 1 at the first failed step.
"""

from __future__ import annotations

import argparse
import email
import re
import secrets
import sys
import time
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

QUESTION = "How do I reset my password?"
_LINK = re.compile(r"https?://\S+?/api/auth/verify-email/([A-Za-z0-9_\-]+)/")
_STATIC = re.compile(r"""(?:src|href)=["']([^"']*/static/[^"']+)["']""")


class SmokeFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def expect(response: httpx.Response, status: int, step: str) -> Any:
    """The JSON body of ``response`` once its status is ``status``; a failure names the step."""
    if response.status_code != status:
        raise SmokeFailure(f"{step}: expected {status}, got {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None


def _texts(message: Message) -> list[str]:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode(part.get_content_charset() or "utf-8", errors="replace"))
    return texts


def mailed_token(mail_dir: Path, address: str, pattern: re.Pattern[str], *, what: str, timeout_s: float = 20.0) -> str:
    """The newest match of ``pattern``'s group in the mail sent to ``address`` (mail goes after commit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tokens = []
        for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime) if mail_dir.is_dir() else []:
            # The file backend separates messages with a line of 79 dashes.
            for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
                message = email.message_from_bytes(raw.strip(b"\n"))
                if address not in str(message.get("To", "")):
                    continue
                for text in _texts(message):
                    tokens += pattern.findall(text)
        if tokens:
            return tokens[-1]
        time.sleep(0.2)
    raise SmokeFailure(f"no {what} email to {address} in {mail_dir} after {timeout_s:.0f} s")


def verification_token(mail_dir: Path, address: str) -> str:
    """The token of the newest verification link mailed to ``address``."""
    return mailed_token(mail_dir, address, _LINK, what="verification")


def check_static(client: httpx.Client, page: str) -> int:
    """``page`` answers 200 and every /static/ file it references too; returns how many files."""
    response = client.get(page)
    check(response.status_code == 200, f"GET {page}: {response.status_code}")
    urls = sorted(set(_STATIC.findall(response.text)))
    check(bool(urls), f"{page} references no /static/ file")
    for url in urls:
        asset = client.get(urljoin(str(response.url), url))
        check(asset.status_code == 200 and bool(asset.content), f"static file {url} of {page}: {asset.status_code}")
    return len(urls)


def run(base_url: str, mail_dir: Path) -> None:
    suffix = secrets.token_hex(4)
    username, address = f"smoke-{suffix}", f"smoke-{suffix}@example.com"
    password = f"Smoke-{secrets.token_urlsafe(12)}"
    with httpx.Client(base_url=base_url, timeout=60.0, follow_redirects=False) as client:
        health = expect(client.get("/api/health/"), 200, "health")
        check(health["status"] == "ok", f"health: {health}")
        print(f"ok  health: {', '.join(sorted(health['checks']))}")

        docs_files = check_static(client, "/api/docs/")
        admin_files = check_static(client, "/admin/login/")
        print(f"ok  static files served: {docs_files} for /api/docs/, {admin_files} for /admin/login/")

        body = {"username": username, "email": address, "password": password}
        registered = expect(client.post("/api/auth/register/", json=body), 201, "register")
        check(registered["is_verified"] is False, "register: a new account must start unverified")
        refused = client.post("/api/auth/login/", json={"username": username, "password": password})
        check(refused.status_code == 403, f"login before verification: expected 403, got {refused.status_code}")
        print(f"ok  registered {username}; login refused until verified")

        token = verification_token(mail_dir, address)
        verified = expect(client.get(f"/api/auth/verify-email/{token}/"), 200, "verify from the emailed link")
        check(verified["is_verified"] is True, "verify: the account is not marked verified")
        print("ok  verified from the emailed link")

        tokens = expect(
            client.post("/api/auth/login/", json={"username": username, "password": password}), 200, "login"
        )
        auth = {"Authorization": f"Bearer {tokens['access']}"}
        print("ok  logged in")

        session = expect(client.post("/api/chat/sessions/", json={"title": "Smoke"}, headers=auth), 201, "session")
        url = f"/api/chat/sessions/{session['id']}/messages/"
        reply = expect(client.post(url, json={"content": QUESTION}, headers=auth), 201, "send message")
        bot = reply["bot_message"]
        check(bot["sender"] == "bot" and bool(bot["content"].strip()), f"send: empty answer {bot}")
        check(bool(bot["sources"]), f"send: the answer cites no sources: {bot}")
        print(f"ok  answered with {len(bot['sources'])} sources, first: {bot['sources'][0]['title']!r}")

        history = expect(client.get("/api/chat/history/", headers=auth), 200, "history")
        check(history["total_sessions"] == 1 and history["total_messages"] == 2, f"history totals: {history}")
        ids = {m["id"] for m in history["recent_messages"]}
        check({reply["user_message"]["id"], bot["id"]} <= ids, "history: the new messages are missing")
        print("ok  history lists the session and both messages")

        expect(client.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}, headers=auth), 205, "logout")
        after = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
        check(after.status_code == 401, f"refresh after logout: expected 401, got {after.status_code}")
        print("ok  logged out; the refresh token is refused")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--mail-dir", required=True, type=Path, help="the server's EMAIL_FILE_PATH")
    args = parser.parse_args()
    check_host = urlsplit(args.base_url)
    if not check_host.scheme or not check_host.netloc:
        parser.error("--base-url must be an absolute URL")
    try:
        run(args.base_url.rstrip("/"), args.mail_dir)
    except (SmokeFailure, httpx.HTTPError, KeyError, ValueError) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("smoke: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
