"""Categories are free names (validated by rag.categories), no longer four fixed choices."""

import rag.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("rag", "0003_chunk_unit_vectors")]

    operations = [
        migrations.AlterField(
            model_name="document",
            name="category",
            field=models.CharField(
                default="Other",
                help_text="Free name: 1-50 letters, digits, spaces or hyphens, starting and ending with a letter or digit.",
                max_length=50,
                validators=[rag.models.validate_category],
            ),
        ),
    ]
