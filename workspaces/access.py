"""Who may do what in a workspace: the checks every app calls before it reads or writes a
workspace's data (DESIGN §8).

A workspace the caller is not a member of is not found (404, never 403, so ids cannot be probed);
a member whose role is too low is refused with 403. A request made with an API key
(``request.auth`` is an ``ApiKey``) acts as the key's creator but only inside the key's
workspace and within its scopes.
"""

from __future__ import annotations

from typing import Any

from rag.types import RetrievalScope
from users.models import User
from utils.exceptions import NotFound, PermissionDeniedError
from workspaces.models import ApiKey, Membership, Workspace
from workspaces.services import workspace_personal_get


def api_key_of(request: Any) -> ApiKey | None:
    """The API key a request was authenticated with, if any."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def membership_require(
    *, user: User, workspace_id: int, manage: bool = False, api_key: ApiKey | None = None
) -> Membership:
    """The caller's membership of ``workspace_id``; ``manage`` requires owner or admin.

    Not a member (or an API key of another workspace): ``NotFound``. Too low a role: 403.
    """
    if api_key is not None and api_key.workspace_id != workspace_id:
        raise NotFound("Workspace not found.")
    membership = Membership.objects.select_related("workspace").filter(user=user, workspace_id=workspace_id).first()
    if membership is None:
        raise NotFound("Workspace not found.")
    if manage and not membership.can_manage:
        raise PermissionDeniedError("Only the workspace's owners and admins can do this.")
    return membership


def workspace_resolve(
    *, user: User, workspace_id: int | None, manage: bool = False, api_key: ApiKey | None = None
) -> Workspace:
    """The workspace a request names, checked; none named: the API key's workspace, else the
    caller's personal workspace."""
    if workspace_id is None:
        workspace_id = api_key.workspace_id if api_key is not None else workspace_personal_get(user=user).pk
    return membership_require(user=user, workspace_id=workspace_id, manage=manage, api_key=api_key).workspace


def retrieval_scope(workspace: Workspace) -> RetrievalScope:
    """What search and chat in ``workspace`` read: its documents, plus the shared base unless off."""
    return RetrievalScope(workspace_id=workspace.pk, include_shared=workspace.include_shared)
