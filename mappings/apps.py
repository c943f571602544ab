from django.apps import AppConfig


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = "FHIR Studio mappings"

    def ready(self) -> None:
        # Register the Celery tasks in every process, the web server's included: actions queue them by name
        # (mappings/actions/deployments.py) rather than importing the task layer above them.
        from mappings import tasks  # noqa: F401
