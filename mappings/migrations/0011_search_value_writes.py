"""Faster index merges (issue 12): SearchValue.resource loses its database constraint, and on PostgreSQL the
collation-ordered (param, value) index goes, since 0004's varchar_pattern_ops index answers both = and LIKE 'prefix%'.
Other databases keep a plain (param, value) index, created here outside the model state like 0004's."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "search_value_idx"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON mappings_searchvalue (param, value)")


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("mappings", "0010_index_chunks")]
    operations = [
        migrations.RemoveIndex(model_name="searchvalue", name=INDEX),
        migrations.RunPython(create, drop),
        migrations.AlterField(
            model_name="searchvalue",
            name="resource",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="search_values",
                to="mappings.facaderesource",
            ),
        ),
    ]
