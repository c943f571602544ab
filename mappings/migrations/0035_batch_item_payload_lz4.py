"""BatchItem payloads are compressed with lz4 on PostgreSQL, not pglz (issue 12): a batch's plan writes every message
it splits (8.5 KB for the benchmark's ADT^A01, so TOASTed and compressed), and pglz cost the server 0.12 ms a row
against 0.04 for lz4 or none (3 rounds of 3,000 rows, backend CPU from /proc, load 13); a chunk's read of its
payloads decompresses 0.019 → 0.012 ms a row. Rows already stored keep their compression until rewritten. A server
built without lz4 keeps pglz; SQLite has no such setting."""

from django.db import migrations

SET = """
DO $$
BEGIN
    ALTER TABLE mappings_batchitem ALTER COLUMN payload SET COMPRESSION {method};
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: batch item payloads keep pglz';
END $$;
"""


def forwards(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SET.format(method="lz4"))


def backwards(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SET.format(method="pglz"))


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0034_search_value_without_primary_key"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
