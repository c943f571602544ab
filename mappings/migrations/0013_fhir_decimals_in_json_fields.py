"""FHIR content in JSON fields keeps its decimals' digits (0.70 stays 0.70): encoder and decoder, no schema change."""

from django.db import migrations, models

from mappings.engine.formats.decimals import FhirJSONDecoder, FhirJSONEncoder


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0012_profiles"),
    ]

    operations = [
        migrations.AlterField(
            model_name="facaderesource",
            name="content",
            field=models.JSONField(decoder=FhirJSONDecoder, encoder=FhirJSONEncoder),
        ),
        migrations.AlterField(
            model_name="profiledefinition",
            name="content",
            field=models.JSONField(decoder=FhirJSONDecoder, encoder=FhirJSONEncoder),
        ),
        migrations.AlterField(
            model_name="samplecase",
            name="expected",
            field=models.JSONField(blank=True, decoder=FhirJSONDecoder, encoder=FhirJSONEncoder, null=True),
        ),
    ]
