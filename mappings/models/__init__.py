"""The studio's models, one module per area. Models compute (properties, querysets, hashes); actions/ writes."""

from .audit import AuditAction, AuditEvent
from .connection import AuthMode, Connection
from .facade import (
    DataSource,
    Deployment,
    Facade,
    FacadeRequest,
    FacadeResource,
    PatientGroup,
    ResourceBinding,
    SearchValue,
    SourceRecord,
)
from .jobs import (
    FINISHED,
    BatchChunk,
    BatchItem,
    BatchJob,
    ChunkStatus,
    ExportChunk,
    ExportJob,
    IndexChunk,
    JobStatus,
)
from .library import LookupTable, LookupTableVersion, Snippet, SnippetVersion
from .mapping import Draft, Mapping
from .messages import MessageChannel, MessageStatus, ProcessedMessage
from .profiles import DefinitionType, ProfileDefinition, ProfilePackage
from .security import ClientApp, UsedAssertion
from .store import INDEXED_KINDS, StoreVersion
from .testing import SampleCase, TestRun
from .version import MappingVersion

__all__ = [
    "FINISHED",
    "INDEXED_KINDS",
    "AuditAction",
    "AuditEvent",
    "AuthMode",
    "BatchChunk",
    "BatchItem",
    "BatchJob",
    "ChunkStatus",
    "ClientApp",
    "Connection",
    "DataSource",
    "DefinitionType",
    "Deployment",
    "Draft",
    "ExportChunk",
    "ExportJob",
    "Facade",
    "FacadeRequest",
    "FacadeResource",
    "IndexChunk",
    "JobStatus",
    "LookupTable",
    "LookupTableVersion",
    "Mapping",
    "MappingVersion",
    "MessageChannel",
    "MessageStatus",
    "PatientGroup",
    "ProcessedMessage",
    "ProfileDefinition",
    "ProfilePackage",
    "ResourceBinding",
    "SampleCase",
    "SearchValue",
    "Snippet",
    "SnippetVersion",
    "SourceRecord",
    "StoreVersion",
    "TestRun",
    "UsedAssertion",
]
