"""The message log's retention: rows older than FHIR_STUDIO_MESSAGE_RETENTION_DAYS are deleted by a beat task
(fhirstudio/celery.py) or `fhirstudio purge-messages`. Failed messages keep their payload, which is patient data, so
the log keeps nothing past the retention whatever its status."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mappings.actions.messages import do_purge_messages

logger = logging.getLogger(__name__)


def purge_messages_direct(days: int | None = None) -> int:
    """Delete the log rows older than `days` (the retention setting by default); returns how many."""
    days = settings.FHIR_STUDIO["MESSAGE_RETENTION_DAYS"] if days is None else days
    deleted = do_purge_messages(timezone.now() - timedelta(days=days), acting_user=None)
    logger.info("message log: %d rows older than %d days purged", deleted, days)
    return deleted
