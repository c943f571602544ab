"""The admin console's long jobs: bulk exports, batches (each with its chunks: status, attempts, heartbeat, counts)
and the patient groups `Group/<id>/$export` exports. History, read-only: clients start and cancel exports, analysts
run batches and define groups in the studio (API and pages), through the actions. Registered by mappings/admin.py."""

from __future__ import annotations

from django.contrib import admin

from mappings.admin import ReadOnlyAdmin, ReadOnlyMixin
from mappings.models import BatchChunk, BatchJob, ExportChunk, ExportJob, PatientGroup

CHUNK_FIELDS = ("status", "attempts", "done", "failed", "queued_at", "heartbeat_at", "finished_at", "error")


class ExportChunkInline(ReadOnlyMixin, admin.TabularInline):
    model = ExportChunk
    fields = ("resource_type", "number", *CHUNK_FIELDS, "files")
    extra = 0


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ("key", "facade", "level", "status", "planned", "created_at", "finished_at")
    list_filter = ("status", "level")
    search_fields = ("facade__slug", "request", "client")
    list_select_related = ("facade",)
    fields = (
        "key",
        "facade",
        "level",
        "group_id",
        "status",
        "request",
        "parameters",
        "client",
        "planned",
        "transaction_time",
        "requires_access_token",
        "error",
        "created_at",
        "finished_at",
        "files_deleted_at",
    )
    inlines = (ExportChunkInline,)


class BatchChunkInline(ReadOnlyMixin, admin.TabularInline):
    model = BatchChunk
    fields = ("first_seq", "last_seq", *CHUNK_FIELDS)
    extra = 0


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "version", "status", "total", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("version__mapping__slug",)
    list_select_related = ("version__mapping", "created_by")
    fields = (
        "version",
        "source",
        "inputs",
        "reprocess_of",
        "validate",
        "status",
        "total",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    inlines = (BatchChunkInline,)


@admin.register(PatientGroup)
class PatientGroupAdmin(ReadOnlyAdmin):
    list_display = ("group_id", "facade", "name", "created_at")
    search_fields = ("group_id", "name", "facade__slug")
    list_select_related = ("facade",)
    fields = ("facade", "group_id", "name", "patient_ids", "created_at")
