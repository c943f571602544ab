"""FacadeResource.content kept in the row, compressed, up to 4 KB (issue 12). PostgreSQL moves a row's big values
to the TOAST table once the row passes toast_tuple_target (2 KB by default): an ADT Patient's content, 2.4 KB
compressed, went there as two chunks and two TOAST index entries, written when a chunk stages it, written again
when the swap stamps meta.lastUpdated, and read back through that index on every read. With a 4 KB target it is
compressed and stays in the row. Measured on 20,000 staged ADT Patients (2026-12-06 19:13, busy machine): the swap's
WAL 99.6 → 60.5 MB, staging's 199 → 191 MB. Rows already written move when next written (a re-index)."""

from django.db import migrations

TARGET = "ALTER TABLE mappings_facaderesource SET (toast_tuple_target = {})"


def inline(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TARGET.format(4096))


def default(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE mappings_facaderesource RESET (toast_tuple_target)")


class Migration(migrations.Migration):
    dependencies = [("mappings", "0018_client_apps")]
    operations = [migrations.RunPython(inline, default)]
