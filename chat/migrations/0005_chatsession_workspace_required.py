import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_chatsession_workspace"),
        ("workspaces", "0002_personal_workspaces"),
    ]

    operations = [
        migrations.AlterField(
            model_name="chatsession",
            name="workspace",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="chat_sessions",
                to="workspaces.workspace",
            ),
        ),
    ]
