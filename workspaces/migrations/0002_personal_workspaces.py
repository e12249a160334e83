"""Every existing user gets a personal workspace (owner); their chat sessions move into it.

Existing documents stay with no workspace: they are the shared knowledge base.
"""

import secrets

from django.conf import settings
from django.db import migrations
from django.utils.text import slugify


def create_personal_workspaces(apps, schema_editor):
    User = apps.get_model("users", "User")
    Workspace = apps.get_model("workspaces", "Workspace")
    Membership = apps.get_model("workspaces", "Membership")
    ChatSession = apps.get_model("chat", "ChatSession")
    limits = settings.WORKSPACE_PLANS["free"]
    for user in User.objects.filter(personal_workspace__isnull=True).iterator():
        slug = f"{slugify(user.username)[:48].strip('-') or 'workspace'}-{secrets.token_hex(4)}"
        workspace = Workspace.objects.create(
            name=f"{user.username}'s workspace", slug=slug, personal_owner=user, plan="free", **limits
        )
        Membership.objects.create(workspace=workspace, user=user, role="owner")
        ChatSession.objects.filter(user=user, workspace__isnull=True).update(workspace=workspace)


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0001_initial"),
        ("chat", "0004_chatsession_workspace"),
    ]

    operations = [migrations.RunPython(create_personal_workspaces, migrations.RunPython.noop)]
