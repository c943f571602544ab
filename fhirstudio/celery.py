"""The Celery app. Broker and queues come from settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

app = Celery("fhirstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _schedule_message_purge(sender: Celery, **kwargs: object) -> None:
    # The message log's retention (FHIR_STUDIO_MESSAGE_RETENTION_DAYS): rows past it are deleted every hour.
    sender.add_periodic_task(3600.0, sender.signature("mappings.tasks.purge_messages"), name="purge-messages")
