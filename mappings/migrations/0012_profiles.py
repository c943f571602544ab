"""Profiles (issue 13): uploaded StructureDefinitions, ValueSets, CodeSystems and IG packages; their audit actions."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0011_search_value_writes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("mapping.created", "Mapping Created"),
                    ("mapping.updated", "Mapping Updated"),
                    ("mapping.deleted", "Mapping Deleted"),
                    ("draft.saved", "Draft Saved"),
                    ("version.published", "Version Published"),
                    ("version.restored", "Version Restored"),
                    ("snippet.created", "Snippet Created"),
                    ("snippet.updated", "Snippet Updated"),
                    ("snippet.deleted", "Snippet Deleted"),
                    ("lookup_table.created", "Table Created"),
                    ("lookup_table.updated", "Table Updated"),
                    ("lookup_table.deleted", "Table Deleted"),
                    ("sample.created", "Sample Created"),
                    ("sample.updated", "Sample Updated"),
                    ("sample.deleted", "Sample Deleted"),
                    ("tests.run", "Tests Run"),
                    ("facade.created", "Facade Created"),
                    ("facade.updated", "Facade Updated"),
                    ("facade.deleted", "Facade Deleted"),
                    ("source.created", "Source Created"),
                    ("source.deleted", "Source Deleted"),
                    ("source.records_uploaded", "Records Uploaded"),
                    ("facade.binding_saved", "Binding Saved"),
                    ("facade.binding_deleted", "Binding Deleted"),
                    ("facade.deployed", "Deployed"),
                    ("facade.deploy_refused", "Deploy Refused"),
                    ("facade.indexed", "Indexed"),
                    ("facade.rolled_back", "Rolled Back"),
                    ("facade.group_saved", "Group Saved"),
                    ("facade.group_deleted", "Group Deleted"),
                    ("export.started", "Export Started"),
                    ("export.finished", "Export Finished"),
                    ("export.cancelled", "Export Cancelled"),
                    ("export.files_deleted", "Export Files Deleted"),
                    ("batch.started", "Batch Started"),
                    ("batch.finished", "Batch Finished"),
                    ("batch.cancelled", "Batch Cancelled"),
                    ("profile.uploaded", "Profile Uploaded"),
                    ("profile.deleted", "Profile Deleted"),
                    ("package.uploaded", "Package Uploaded"),
                    ("package.deleted", "Package Deleted"),
                ],
                max_length=40,
            ),
        ),
        migrations.CreateModel(
            name="ProfilePackage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                ("version", models.CharField(max_length=50)),
                ("description", models.TextField(blank=True)),
                ("dependencies", models.JSONField(blank=True, default=dict)),
                ("skipped", models.PositiveIntegerField(default=0)),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
                (
                    "uploaded_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["name", "version"],
            },
        ),
        migrations.CreateModel(
            name="ProfileDefinition",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "resource_type",
                    models.CharField(
                        choices=[
                            ("StructureDefinition", "Structure Definition"),
                            ("ValueSet", "Value Set"),
                            ("CodeSystem", "Code System"),
                        ],
                        max_length=30,
                    ),
                ),
                ("url", models.CharField(max_length=500, unique=True)),
                ("version", models.CharField(blank=True, max_length=100)),
                ("name", models.CharField(blank=True, max_length=200)),
                ("title", models.CharField(blank=True, max_length=300)),
                ("type", models.CharField(blank=True, db_index=True, max_length=100)),
                ("kind", models.CharField(blank=True, max_length=30)),
                ("derivation", models.CharField(blank=True, max_length=20)),
                ("base_definition", models.CharField(blank=True, db_index=True, max_length=500)),
                ("extension_urls", models.JSONField(blank=True, default=list)),
                ("snapshot_generated", models.BooleanField(default=False)),
                ("content", models.JSONField()),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
                (
                    "uploaded_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "package",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="definitions",
                        to="mappings.profilepackage",
                    ),
                ),
            ],
            options={
                "ordering": ["url"],
            },
        ),
        migrations.AddConstraint(
            model_name="profilepackage",
            constraint=models.UniqueConstraint(fields=("name", "version"), name="one_package_version"),
        ),
    ]
