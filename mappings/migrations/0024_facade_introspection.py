# Written by hand (helper J) with only the Facade introspection fields: other models' pending changes belong to
# their own migrations.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mappings", "0023_connections"),
    ]

    operations = [
        migrations.AlterField(
            model_name="facade",
            name="auth_mode",
            field=models.CharField(
                choices=[("open", "Open"), ("smart-backend", "Smart Backend"), ("introspection", "Introspection")],
                default="open",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="facade",
            name="introspection_url",
            field=models.URLField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="facade",
            name="introspection_client_id",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="facade",
            name="introspection_client_secret",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="facade",
            name="introspection_audience",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="facade",
            name="introspection_timeout_s",
            field=models.FloatField(default=5.0),
        ),
    ]
