"""The studio's models, one module per area. Models compute (properties, querysets, hashes); actions.py writes."""

from .audit import AuditAction, AuditEvent
from .library import LookupTable, LookupTableVersion, Snippet, SnippetVersion
from .mapping import Draft, Mapping
from .testing import SampleCase, TestRun
from .version import MappingVersion

__all__ = [
    "AuditAction",
    "AuditEvent",
    "Draft",
    "LookupTable",
    "LookupTableVersion",
    "Mapping",
    "MappingVersion",
    "SampleCase",
    "Snippet",
    "SnippetVersion",
    "TestRun",
]
