"""Search values carry the key of the index they belong to (SearchValue.build; Deployment.index_key names the served
one), so a search reads the live index's values alone and counts its matches without visiting FacadeResource, and a
swap or a delete drops an index's values by key. Existing indexes are keyed by their deployment's id. The (param,
value) index becomes (build, param, value): on PostgreSQL varchar_pattern_ops and covering the resource id, like the
date index (migration 0015); elsewhere a plain index."""

from django.db import migrations, models

PG_INDEXES = [
    ("search_value_prefix_idx", "(build, param, value varchar_pattern_ops) INCLUDE (resource_id)"),
    ("search_date_idx", '(build, param, start) INCLUDE (resource_id, "end")'),
]


def key_existing_indexes(apps, schema_editor) -> None:
    execute = schema_editor.execute
    execute("UPDATE mappings_deployment SET index_key = id WHERE ready")
    if schema_editor.connection.vendor == "postgresql":
        execute(
            "UPDATE mappings_searchvalue AS sv SET build = fr.deployment_id"
            " FROM mappings_facaderesource AS fr WHERE fr.id = sv.resource_id"
        )
    else:
        execute(
            "UPDATE mappings_searchvalue SET build ="
            " (SELECT deployment_id FROM mappings_facaderesource AS fr WHERE fr.id = mappings_searchvalue.resource_id)"
        )


def keyed_value_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name, columns in PG_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
            schema_editor.execute(f"CREATE INDEX {name} ON mappings_searchvalue {columns}")
    else:
        schema_editor.execute("DROP INDEX IF EXISTS search_value_idx")
        schema_editor.execute("CREATE INDEX search_value_idx ON mappings_searchvalue (build, param, value)")


def unkeyed_value_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS search_value_prefix_idx")
        schema_editor.execute(
            "CREATE INDEX search_value_prefix_idx ON mappings_searchvalue"
            " (param, value varchar_pattern_ops) INCLUDE (resource_id)"
        )
    else:
        schema_editor.execute("DROP INDEX IF EXISTS search_value_idx")
        schema_editor.execute("CREATE INDEX search_value_idx ON mappings_searchvalue (param, value)")


class Migration(migrations.Migration):
    dependencies = [("mappings", "0015_covering_search_indexes")]
    operations = [
        migrations.RemoveIndex(model_name="searchvalue", name="search_date_idx"),
        migrations.AddField(
            model_name="deployment", name="index_key", field=models.BigIntegerField(blank=True, null=True)
        ),
        migrations.AddField(model_name="searchvalue", name="build", field=models.BigIntegerField(null=True)),
        migrations.RunPython(key_existing_indexes, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="searchvalue",
            index=models.Index(fields=["build", "param", "start"], name="search_date_idx"),
        ),
        migrations.RunPython(keyed_value_index, unkeyed_value_index),
    ]
