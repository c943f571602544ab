"""The FHIR Studio mapping engine: pure Python, no Django, Celery or models (ruff TID251 enforces it).

compiled = compile_mapping(template_text, snippets={...}, lookup_tables={...}, source_format="hl7v2")
result = run_mapping(compiled, payload_bytes, limits=Limits())
result.output        # the FHIR resource or Bundle (a dict), or None when a stage failed
result.issues        # an OperationOutcome with every error and warning (codes FS-*, template line, FHIRPath)
result.timings       # milliseconds: parse, render, postprocess, validate, total
template_references(template_text)  # the snippets and lookup tables it names, from the syntax tree
for message in split_messages(file, source_format="hl7v2", filename="feed.hl7"):  # a batch: one file, many messages
    message.key, message.payload, message.source_format, message.origin        # SplitLimits bounds it (zip bombs too)
formats.parse(text, "xml"), formats.serialize(resource, "ttl")  # mappings.engine.formats: FHIR JSON, XML, Turtle
"""

from . import accelerated  # noqa: F401 — first: it installs the finder of the compiled modules
from .errors import ErrorCode, MappingError, Stage, operation_outcome
from .limits import Limits
from .locate import clear_caches
from .lookup import LookupTable
from .pipeline import CompiledMapping, MappingResult, compile_mapping, run_mapping
from .references import TemplateReferences, closure_references, template_references
from .sources import SOURCE_FORMATS, parse_source
from .splitting import SPLIT_FORMATS, SplitLimits, SplitMessage, split_messages

__all__ = [
    "SOURCE_FORMATS",
    "SPLIT_FORMATS",
    "CompiledMapping",
    "ErrorCode",
    "Limits",
    "LookupTable",
    "MappingError",
    "MappingResult",
    "SplitLimits",
    "SplitMessage",
    "Stage",
    "TemplateReferences",
    "clear_caches",
    "closure_references",
    "compile_mapping",
    "operation_outcome",
    "parse_source",
    "run_mapping",
    "split_messages",
    "template_references",
]
