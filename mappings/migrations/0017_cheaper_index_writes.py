"""Cheaper index writes (issue 12: PostgreSQL's work on each chunk competes with the engine on two workers' cores).
Measured in psql on 2,000 staged ADT Patients:

- FacadeResource.content compressed with lz4 instead of pglz (PostgreSQL 14+ built with lz4; new values only, a
  re-index rewrites old ones): inserting a chunk's resources −23 %, the swap's jsonb_set UPDATE −49 %.
- search_date_idx only over dates (`WHERE start IS NOT NULL`; 3 of a Patient's 33 values): search values' COPY −27 %.
  The model now states its covering columns (PostgreSQL only) instead of 0016 adding them outside the model state.
- No index of the deployment foreign key's own: the unique (deployment, type, id) index leads with its column."""

import django.db.models.deletion
from django.db import DatabaseError, migrations, models, transaction

CONTENT = "ALTER TABLE mappings_facaderesource ALTER COLUMN content SET COMPRESSION {}"


def _compress(schema_editor, method: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint: the migration goes on without
            schema_editor.execute(CONTENT.format(method))
    except DatabaseError:  # a server older than 14, or built without lz4: pglz stays
        pass


def lz4(apps, schema_editor) -> None:
    _compress(schema_editor, "lz4")


def pglz(apps, schema_editor) -> None:
    _compress(schema_editor, "pglz")


def covering_date_index(apps, schema_editor) -> None:
    """Backwards: 0016's PostgreSQL date index (the state before this migration has no include)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS search_date_idx")
        schema_editor.execute(
            'CREATE INDEX search_date_idx ON mappings_searchvalue (build, param, start) INCLUDE (resource_id, "end")'
        )


class Migration(migrations.Migration):
    dependencies = [("mappings", "0016_index_keys")]
    operations = [
        migrations.RunPython(migrations.RunPython.noop, covering_date_index),
        migrations.RemoveIndex(model_name="searchvalue", name="search_date_idx"),
        migrations.AddIndex(
            model_name="searchvalue",
            index=models.Index(
                condition=models.Q(start__isnull=False),
                fields=["build", "param", "start"],
                include=("resource", "end"),
                name="search_date_idx",
            ),
        ),
        migrations.AlterField(
            model_name="facaderesource",
            name="deployment",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="resources",
                to="mappings.deployment",
            ),
        ),
        migrations.RunPython(lz4, pglz),
    ]
