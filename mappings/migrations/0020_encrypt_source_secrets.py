"""Encrypt the credentials of HTTP data sources already stored in plain text (mappings/secrets.py: auth.token,
auth.password, secret headers), with the configured FHIR_STUDIO_SECRETS_KEY; reversing decrypts them again."""

from django.db import migrations

from mappings import secrets


def _rewrite(apps, change) -> None:
    DataSource = apps.get_model("mappings", "DataSource")
    for source in DataSource.objects.filter(kind="http").only("id", "config"):
        config = change(source.config or {})
        if config != source.config:
            DataSource.objects.filter(pk=source.pk).update(config=config)


def encrypt(apps, schema_editor) -> None:
    _rewrite(apps, secrets.sealed_as_stored)


def decrypt(apps, schema_editor) -> None:
    _rewrite(apps, secrets.opened)


class Migration(migrations.Migration):
    dependencies = [("mappings", "0019_inline_resource_content")]

    operations = [migrations.RunPython(encrypt, decrypt, elidable=False)]
