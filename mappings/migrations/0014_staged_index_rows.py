"""Index rows staged while a deployment is indexed (issue 12): every indexing worker writes its chunk's resources under
`staged_for` (no deployment yet, so nothing reads them), and the swap gives them their deployment in one UPDATE,
instead of one process merging every chunk's file at the end."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0013_fhir_decimals_in_json_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="facaderesource",
            name="staged_for",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="facaderesource",
            name="deployment",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="resources",
                to="mappings.deployment",
            ),
        ),
        migrations.AddConstraint(
            model_name="facaderesource",
            constraint=models.UniqueConstraint(
                condition=models.Q(("staged_for__isnull", False)),
                fields=("staged_for", "resource_type", "resource_id"),
                name="one_staged_resource_per_id",
            ),
        ),
    ]
