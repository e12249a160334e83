"""The workspaces journey of the README, end to end over HTTP (scripts/ci_smoke.sh runs it on CI).

    python scripts/journey.py --base-url http://127.0.0.1:8000 --mail-dir var/mail [--check-residue]

Two people register (verification links read from the server's file email backend, as
scripts/smoke.py does), each uploads a document of their own, one creates a team workspace, adds a
document to it and invites the other, who accepts from the emailed token; both chat grounded in the
team's document and neither sees the other's private one; a server-to-server client chats with an
API key of the team; the owner deletes the team workspace and the reply says what went. Then the
team's session, document and key are gone, and with ``--check-residue`` (run beside the server,
with its environment) ``manage.py shell`` counts the rows and vectors left for the workspace: none.
Exits 1 at the first failed step.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from smoke import SmokeFailure, check, expect, mailed_token, verification_token

_INVITATION = re.compile(r"/api/workspaces/invitations/accept/ :\s+([A-Za-z0-9_\-]{20,})")
TEAM_DOC = (
    "Acme refund policy. Customers can return an Acme order within 45 days of delivery for a full refund. "
    "Refunds reach the original payment method within 5 business days. Internal reference: {code}."
)
PRIVATE_DOC = "Private notes of {name}. The locker combination is {code}; nobody else may read it."
QUESTION = "How long do customers have to return an Acme order?"

# Counted by --check-residue in a `manage.py shell` beside the server: rows that still name the
# workspace, and vectors a search confined to it still finds.
RESIDUE = """
from chat.models import ChatSession
from rag.models import Chunk, Document
from rag.providers.factory import get_embedder, get_vector_store
from rag.types import RetrievalScope
from workspaces.models import ApiKey, Invitation, Membership, Workspace
ws = {workspace_id}
rows = sum(q.count() for q in (
    Workspace.objects.filter(pk=ws), Membership.objects.filter(workspace_id=ws),
    Invitation.objects.filter(workspace_id=ws), ApiKey.objects.filter(workspace_id=ws),
    Document.objects.filter(workspace_id=ws), Chunk.objects.filter(document__workspace_id=ws),
    ChatSession.objects.filter(workspace_id=ws)))
vector = get_embedder().embed_query("Acme refund policy")
found = get_vector_store().query(vector, top_k=1000, scope=RetrievalScope(workspace_id=ws, include_shared=False))
print(f"{rows} {len(found)}")
"""


def invitation_token(mail_dir: Path, address: str) -> str:
    """The token of the newest workspace invitation mailed to ``address``."""
    return mailed_token(mail_dir, address, _INVITATION, what="invitation")


def person(client: httpx.Client, mail_dir: Path, name: str) -> dict[str, str]:
    """Register, verify from the emailed link and log in; the bearer header of the new account."""
    suffix = secrets.token_hex(4)
    username, address = f"{name}-{suffix}", f"{name}-{suffix}@example.com"
    password = f"Journey-{secrets.token_urlsafe(12)}"
    body = {"username": username, "email": address, "password": password}
    expect(client.post("/api/auth/register/", json=body), 201, f"register {name}")
    expect(client.get(f"/api/auth/verify-email/{verification_token(mail_dir, address)}/"), 200, f"verify {name}")
    login = {"username": username, "password": password}
    tokens = expect(client.post("/api/auth/login/", json=login), 200, f"login {name}")
    return {"Authorization": f"Bearer {tokens['access']}", "email": address}


def ask(client: httpx.Client, headers: dict[str, str], session_body: dict[str, Any], step: str) -> dict[str, Any]:
    session = expect(client.post("/api/chat/sessions/", json=session_body, headers=headers), 201, f"{step}: session")
    url = f"/api/chat/sessions/{session['id']}/messages/"
    reply = expect(client.post(url, json={"content": QUESTION}, headers=headers), 201, f"{step}: send")
    return {"session": session, "bot": reply["bot_message"]}


def _auth(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}


def run(base_url: str, mail_dir: Path, check_residue: bool) -> None:
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        ann, bob = person(client, mail_dir, "ann"), person(client, mail_dir, "bob")
        print("ok  two people registered, verified and logged in")

        codes = {name: f"{name.upper()}-{secrets.token_hex(3)}" for name in ("ann", "bob", "team")}
        private = {}
        for name, who in (("ann", ann), ("bob", bob)):
            body = {"title": f"{name} private notes", "content": PRIVATE_DOC.format(name=name, code=codes[name])}
            private[name] = expect(client.post("/api/rag/documents/", json=body, headers=_auth(who)), 201, "upload")
            check(private[name]["workspace"] is not None, f"{name}'s document is not in a workspace: {private[name]}")
        print("ok  each uploaded a private document to their personal workspace")

        team = expect(client.post("/api/workspaces/", json={"name": "Acme support"}, headers=_auth(ann)), 201, "team")
        body = {"title": "Acme refunds", "content": TEAM_DOC.format(code=codes["team"]), "workspace": team["id"]}
        team_doc = expect(client.post("/api/rag/documents/", json=body, headers=_auth(ann)), 201, "team document")
        invite = {"email": bob["email"], "role": "member"}
        url = f"/api/workspaces/{team['id']}/invitations/"
        expect(client.post(url, json=invite, headers=_auth(ann)), 201, "invite")
        token = invitation_token(mail_dir, bob["email"])
        accept = "/api/workspaces/invitations/accept/"
        expect(client.post(accept, json={"token": token}, headers=_auth(bob)), 201, "accept")
        again = client.post(accept, json={"token": token}, headers=_auth(bob))
        check(again.status_code in (400, 409), f"an invitation token works once: {again.status_code}")
        print(f"ok  ann created workspace {team['id']}, added a document and invited bob, who accepted")

        for name, who in (("ann", ann), ("bob", bob)):
            answer = ask(client, _auth(who), {"workspace": team["id"]}, f"{name} in the team")["bot"]
            cited = [s["document_id"] for s in answer["sources"]]
            check(team_doc["id"] in cited, f"{name}'s answer does not cite the team document: {answer}")
            check("45 days" in answer["content"], f"{name}'s answer misses the fact: {answer['content']!r}")
        search = {"q": f"locker combination {codes['ann']}", "workspace": team["id"]}
        found = expect(client.get("/api/rag/search/", params=search, headers=_auth(bob)), 200, "bob searches")
        check(private["ann"]["id"] not in [r["document_id"] for r in found["results"]], "bob found ann's notes")
        mine = client.get(f"/api/rag/documents/{private['ann']['id']}/", headers=_auth(bob))
        check(mine.status_code == 404 and codes["ann"] not in mine.text, "bob can read ann's private document")
        print("ok  both chat grounded in the team document; neither reaches the other's private one")

        key_body = {"name": "Helpdesk", "scopes": ["chat", "documents:read"]}
        url = f"/api/workspaces/{team['id']}/api-keys/"
        key = expect(client.post(url, json=key_body, headers=_auth(ann)), 201, "create an API key")
        server = {"Authorization": f"Api-Key {key['key']}"}
        answer = ask(client, server, {}, "API key")
        check(answer["session"]["workspace"] == team["id"], f"the key's session is not in the team: {answer}")
        check(team_doc["id"] in [s["document_id"] for s in answer["bot"]["sources"]], "the key's answer cites none")
        refused = client.get("/api/auth/me/export/", headers=server)
        check(refused.status_code == 403, f"an API key reached an account endpoint: {refused.status_code}")
        print("ok  a server-to-server client chats in the team with an API key, and nothing else")

        delete = f"/api/workspaces/{team['id']}/?confirm={team['slug']}"
        deleted = expect(client.delete(delete, headers=_auth(ann)), 200, "delete the team")["deleted"]
        check(deleted["documents"] == 1 and deleted["vectors"] >= 1, f"deleted: {deleted}")
        check(deleted["sessions"] == 3 and deleted["members"] == 2 and deleted["api_keys"] == 1, f"deleted: {deleted}")
        gone = [
            client.get(f"/api/chat/sessions/{answer['session']['id']}/", headers=_auth(ann)).status_code,
            client.get(f"/api/rag/documents/{team_doc['id']}/", headers=_auth(ann)).status_code,
            client.get("/api/chat/sessions/", headers=server).status_code,
        ]
        check(gone == [404, 404, 401], f"after the deletion: {gone} (expected 404, 404, 401)")
        print(f"ok  ann deleted the team workspace: {deleted}")

    if check_residue:
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", RESIDUE.replace("{workspace_id}", str(team["id"]))],
            capture_output=True,
            text=True,
            check=False,
        )
        check(out.returncode == 0, f"residue check failed: {out.stderr[-2000:]}")
        rows, vectors = out.stdout.split()[-2:]
        check((rows, vectors) == ("0", "0"), f"left of workspace {team['id']}: {rows} rows, {vectors} vectors")
        print(f"ok  nothing of workspace {team['id']} remains: 0 rows, 0 vectors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--mail-dir", required=True, type=Path, help="the server's EMAIL_FILE_PATH")
    parser.add_argument("--check-residue", action="store_true", help="count what is left with manage.py shell")
    args = parser.parse_args()
    if not urlsplit(args.base_url).netloc:
        parser.error("--base-url must be an absolute URL")
    try:
        run(args.base_url.rstrip("/"), args.mail_dir, args.check_residue)
    except (SmokeFailure, httpx.HTTPError, KeyError, ValueError) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("journey: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
