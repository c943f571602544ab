"""The FHIR store (data source kind `fhir-store`): resources written by FHIR clients, kept with every version.

What a store facade serves (read, search, $export) is its bindings' index, as for a stored source: the current
version of each resource is a FacadeResource row of the binding's live deployment, with its SearchValue rows, so a
store read is the facade's one indexed query and a search reads the same values. StoreVersion keeps every version
(deleted ones too), for vread, `_history`, version ids and 410 Gone; the writes in mappings/actions/store.py keep
both in step, in one transaction."""

from __future__ import annotations

from django.db import models

from mappings.engine.formats.decimals import FhirJSONDecoder, FhirJSONEncoder

# Source kinds a facade serves from its deployments' index (FacadeResource and SearchValue rows): read, search and
# $export read that index; the others (http, sql) are asked on each request.
INDEXED_KINDS = frozenset({"stored", "fhir-store"})


class StoreVersion(models.Model):
    """One version of a resource in a store: what was written (None once deleted), numbered from 1 per resource."""

    class Method(models.TextChoices):
        CREATE = "POST"
        UPDATE = "PUT"
        PATCH = "PATCH"
        DELETE = "DELETE"

    # No index of its own: the unique (source, type, id, version) index leads with it.
    source = models.ForeignKey("DataSource", on_delete=models.CASCADE, related_name="store_versions", db_index=False)
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField()
    method = models.CharField(max_length=8, choices=Method.choices)
    last_updated = models.DateTimeField()
    content = models.JSONField(null=True, encoder=FhirJSONEncoder, decoder=FhirJSONDecoder)  # decimals keep digits

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "resource_id", "version_id"], name="one_store_version"
            )
        ]
        # `_history` reads newest first: a type's through the first, a whole store's (system level) through the second,
        # so a page of either is an index range read, not a sort of every version the store holds.
        indexes = [
            models.Index(fields=["source", "resource_type", "last_updated"], name="store_history_idx"),
            models.Index(fields=["source", "last_updated"], name="store_system_history_idx"),
        ]

    @property
    def deleted(self) -> bool:
        return self.method == self.Method.DELETE
