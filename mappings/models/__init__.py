"""The studio's models, one module per area. Models compute (properties, querysets, hashes); actions/ writes."""

from .audit import AuditAction, AuditEvent
from .facade import (
    DataSource,
    Deployment,
    Facade,
    FacadeRequest,
    FacadeResource,
    ResourceBinding,
    SearchValue,
    SourceRecord,
)
from .library import LookupTable, LookupTableVersion, Snippet, SnippetVersion
from .mapping import Draft, Mapping
from .testing import SampleCase, TestRun
from .version import MappingVersion

__all__ = [
    "AuditAction",
    "AuditEvent",
    "DataSource",
    "Deployment",
    "Draft",
    "Facade",
    "FacadeRequest",
    "FacadeResource",
    "LookupTable",
    "LookupTableVersion",
    "Mapping",
    "MappingVersion",
    "ResourceBinding",
    "SampleCase",
    "SearchValue",
    "Snippet",
    "SnippetVersion",
    "SourceRecord",
    "TestRun",
]
