"""PostgreSQL only: an index LIKE 'smith%' can use (FHIR string search matches the start of a value). The default
btree index follows the database collation, which LIKE cannot use; SQLite's LIKE needs no such index to be correct."""

from django.db import migrations

INDEX = "search_value_prefix_idx"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON mappings_searchvalue (param, value varchar_pattern_ops)"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("mappings", "0003_facades")]
    operations = [migrations.RunPython(create, drop)]
