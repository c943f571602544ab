"""The Celery app. Broker and queues come from settings (CELERY_* names)."""

import logging
import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

app = Celery("fhirstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger(__name__)


@app.on_after_configure.connect
def _schedule_message_purge(sender: Celery, **kwargs: object) -> None:
    # The message log's retention (FHIR_STUDIO_MESSAGE_RETENTION_DAYS): rows past it are deleted every hour.
    sender.add_periodic_task(3600.0, sender.signature("mappings.tasks.purge_messages"), name="purge-messages")


@signals.worker_init.connect
def _warm(**kwargs: object) -> None:
    """Load the FHIR definitions and freeze the long-lived objects before the worker takes its first task, not in it
    (~1 s of CPU in each worker's first index or batch chunk). Sent in the worker's main process, after Django's setup
    and before a prefork pool forks: its children share what is frozen."""
    from mappings.caches import freeze_long_lived  # the apps are loaded by now, not when this module is imported

    started = time.process_time()
    freeze_long_lived()
    logger.info(
        "worker warmed: FHIR definitions loaded, long-lived objects frozen (%.2f s CPU)", time.process_time() - started
    )
