"""SearchValue rows lose their primary key index on PostgreSQL (issue 12): nothing reads a search value by its id
(searches read the (build, param, value) and date indexes, deletes go by build or resource), and every value staged
paid one more b-tree insert for it: an index build's 18 values a Patient wrote 14 % less WAL (8.04 → 6.86 KB a
record) and its staging backend used 5–10 % less CPU (bench/index_staging.py, 2,000 Patients, 7 rounds, load 9).
The id column stays (an identity, as Django's primary key in the model); SQLite keeps its table as it is."""

from django.db import migrations

DROP = """
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
    WHERE conrelid = 'mappings_searchvalue'::regclass AND contype = 'p';
    IF name IS NOT NULL THEN
        EXECUTE format('ALTER TABLE mappings_searchvalue DROP CONSTRAINT %%I', name);
    END IF;
END $$;
"""
RESTORE = "ALTER TABLE mappings_searchvalue ADD PRIMARY KEY (id)"


def forwards(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


def backwards(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RESTORE)


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0033_tagged_date_values"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
