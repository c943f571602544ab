"""FacadeResource.content as PostgreSQL `json` instead of `jsonb` (issue 12): an index stages every resource once and
serves it as text, and `jsonb` parsed each one into its binary form on insert. bench/index_staging.py, 2,000 ADT
Patients staged, interleaved rounds: PostgreSQL's CPU per record 0.165 → 0.125 ms.

- The type change rewrites the table and loses the column's compression, which 0017 set to lz4: it is set again
  (pglz stays where lz4 is missing).
- toast_tuple_target 4096 → 3072 (0019): a row is compressed only past the target, and an ADT Patient's JSON text is
  3.5 KB, which 4096 stored uncompressed (jsonb's binary form was past it); compressed it is 1.7 KB, and staging
  writes 18 % less WAL (9.8 → 8.0 KB per Patient, same CPU). Content compressing to 3–4 KB now goes to TOAST."""

from django.db import DatabaseError, migrations, transaction

import mappings.engine.formats.decimals
import mappings.models.facade

CONTENT = "ALTER TABLE mappings_facaderesource ALTER COLUMN content SET COMPRESSION lz4"
TARGET = "ALTER TABLE mappings_facaderesource SET (toast_tuple_target = {})"


def lz4(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint: the migration goes on without
            schema_editor.execute(CONTENT)
    except DatabaseError:  # a server older than 14, or built without lz4
        pass


def target(size: int):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(TARGET.format(size))

    return run


class Migration(migrations.Migration):
    dependencies = [("mappings", "0031_store_system_history_index")]

    operations = [
        migrations.AlterField(
            model_name="facaderesource",
            name="content",
            field=mappings.models.facade.JSONText(
                decoder=mappings.engine.formats.decimals.FhirJSONDecoder,
                encoder=mappings.engine.formats.decimals.FhirJSONEncoder,
            ),
        ),
        migrations.RunPython(lz4, lz4),
        migrations.RunPython(target(3072), target(4096)),
    ]
