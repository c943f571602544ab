"""FacadeResource's two foreign keys (deployment, record) lose their database constraints (issue 12): each staged
resource ran two deferred checks at commit, a trigger and a locking lookup of the referenced row (FOR KEY SHARE, which
writes a lock into every source record's row): 10 µs (record) and 4–14 µs (deployment) a row, EXPLAIN ANALYZE with
immediate constraints, 2,000 rows, 5 runs, load 13; the staging backend's CPU 0.162 → 0.144 ms a record
(bench/index_staging.py, 6 interleaved pairs of 7 rounds). The ORM still cascades and sets null on delete; the
columns' indexes stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0035_batch_item_payload_lz4"),
    ]

    operations = [
        migrations.AlterField(
            model_name="facaderesource",
            name="deployment",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="resources",
                to="mappings.deployment",
            ),
        ),
        migrations.AlterField(
            model_name="facaderesource",
            name="record",
            field=models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="mappings.sourcerecord",
            ),
        ),
    ]
