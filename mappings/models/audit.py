"""One row per write, written by the action that made it (never by a signal)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    MAPPING_CREATED = "mapping.created"
    MAPPING_UPDATED = "mapping.updated"
    MAPPING_DELETED = "mapping.deleted"
    DRAFT_SAVED = "draft.saved"
    VERSION_PUBLISHED = "version.published"
    VERSION_RESTORED = "version.restored"
    SNIPPET_CREATED = "snippet.created"
    SNIPPET_UPDATED = "snippet.updated"
    SNIPPET_DELETED = "snippet.deleted"
    TABLE_CREATED = "lookup_table.created"
    TABLE_UPDATED = "lookup_table.updated"
    TABLE_DELETED = "lookup_table.deleted"
    SAMPLE_CREATED = "sample.created"
    SAMPLE_UPDATED = "sample.updated"
    SAMPLE_DELETED = "sample.deleted"
    TESTS_RUN = "tests.run"
    FACADE_CREATED = "facade.created"
    FACADE_UPDATED = "facade.updated"
    FACADE_DELETED = "facade.deleted"
    SOURCE_CREATED = "source.created"
    SOURCE_UPDATED = "source.updated"
    SOURCE_DELETED = "source.deleted"
    RECORDS_UPLOADED = "source.records_uploaded"
    BINDING_SAVED = "facade.binding_saved"
    BINDING_DELETED = "facade.binding_deleted"
    DEPLOYED = "facade.deployed"
    DEPLOY_REFUSED = "facade.deploy_refused"
    INDEXED = "facade.indexed"
    ROLLED_BACK = "facade.rolled_back"
    GROUP_SAVED = "facade.group_saved"
    GROUP_DELETED = "facade.group_deleted"
    EXPORT_STARTED = "export.started"
    EXPORT_FINISHED = "export.finished"
    EXPORT_CANCELLED = "export.cancelled"
    EXPORT_FILES_DELETED = "export.files_deleted"
    BATCH_STARTED = "batch.started"
    BATCH_FINISHED = "batch.finished"
    BATCH_CANCELLED = "batch.cancelled"
    PROFILE_UPLOADED = "profile.uploaded"
    PROFILE_DELETED = "profile.deleted"
    PACKAGE_UPLOADED = "package.uploaded"
    PACKAGE_DELETED = "package.deleted"
    LOGIN_REFUSED = "auth.login_refused"  # too many failed sign-ins (mappings/login_throttle.py)
    CLIENT_APP_REGISTERED = "client_app.registered"  # SMART client apps (mappings/security/actions.py)
    CLIENT_APP_UPDATED = "client_app.updated"
    CLIENT_APP_DELETED = "client_app.deleted"
    TOKEN_ISSUED = "smart.token_issued"
    TOKEN_REFUSED = "smart.token_refused"
    LOGIN = "auth.login"  # signed in, signed out, wrong password (mappings/actions/auth.py)
    LOGOUT = "auth.logout"
    LOGIN_FAILED = "auth.login_failed"
    API_TOKEN_ISSUED = "auth.api_token_issued"  # the studio API's script token (fhirstudio token)
    API_TOKEN_REFUSED = "auth.api_token_refused"
    USER_CREATED = "user.created"  # accounts and roles changed in the admin console
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    GROUP_CHANGED = "user.group_changed"
    CONNECTION_CREATED = "connection.created"  # connections to FHIR servers (mappings/actions/connections.py)
    CONNECTION_UPDATED = "connection.updated"
    CONNECTION_DELETED = "connection.deleted"
    CONNECTION_TESTED = "connection.tested"
    CONNECTION_PUSHED = "connection.pushed"  # a render sent to a connection as a transaction or batch
    MESSAGE_REPROCESSED = "message.reprocessed"  # the message log (mappings/actions/messages.py)
    MESSAGES_PURGED = "message.purged"


class AuditEvent(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=100)
    mapping_slug = models.CharField(max_length=100, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)  # ids/revisions before the change
    after = models.JSONField(null=True, blank=True)  # ids/revisions after it
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"
