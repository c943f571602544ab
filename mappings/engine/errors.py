"""Every way a mapping run can fail, as stable codes, and the one error type that carries them.

Codes are append-only: never renumber or reuse one, because API clients and saved test runs match on them. Each code
belongs to one stage; the prefix says which (FS-SRC source, FS-TPL template, FS-RND render, FS-PST post-process,
FS-VAL validate, FS-LIM a limit, in any stage). Each has a test that triggers it (tests/engine/test_error_codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

ERROR_SYSTEM = "urn:fhir-studio:error-code"
LOCATION_EXTENSION = "urn:fhir-studio:template-location"


class Stage(str, Enum):
    SOURCE = "source"
    TEMPLATE = "template"
    RENDER = "render"
    POSTPROCESS = "postprocess"
    VALIDATE = "validate"
    LIMIT = "limit"


class IssueCode(Enum):
    """A stable code and the FHIR issue type it is reported with (OperationOutcome.issue.code). Subclassed by the
    engine's ErrorCode and by the studio's other code lists, so every FS code reads the same way."""

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def fhir_type(self) -> str:
        return self.value[1]


class ErrorCode(IssueCode):
    # (code, FHIR issue type) — the FHIR type is what OperationOutcome.issue.code gets.
    SRC_EMPTY = ("FS-SRC-001", "invalid")
    SRC_NOT_TEXT = ("FS-SRC-002", "invalid")
    SRC_UNKNOWN_FORMAT = ("FS-SRC-003", "not-supported")
    SRC_BAD_OPTION = ("FS-SRC-004", "invalid")
    HL7_NO_MSH = ("FS-SRC-010", "structure")
    HL7_BAD_ENCODING = ("FS-SRC-011", "structure")
    HL7_BAD_SEGMENT = ("FS-SRC-012", "structure")
    HL7_SEVERAL_MESSAGES = ("FS-SRC-013", "structure")  # a mapping converts one message; splitting.py splits files
    JSON_INVALID = ("FS-SRC-020", "structure")
    NDJSON_INVALID = ("FS-SRC-021", "structure")
    XML_INVALID = ("FS-SRC-030", "structure")
    XML_DTD_REFUSED = ("FS-SRC-031", "security")
    CSV_RAGGED = ("FS-SRC-040", "structure")
    CSV_NO_HEADER = ("FS-SRC-041", "structure")
    FHIR_NOT_RESOURCE = ("FS-SRC-050", "structure")
    TURTLE_INVALID = ("FS-SRC-051", "structure")  # FHIR RDF that is not Turtle (formats/turtle.py)
    # Splitting an uploaded file into messages (splitting.py), before any mapping runs.
    SPLIT_NOT_ZIP = ("FS-SRC-060", "invalid")  # not a zip, or a member that cannot be read (encrypted, nested zip)
    SPLIT_ZIP_TOO_LARGE = ("FS-SRC-061", "too-costly")  # too many members or too many bytes unpacked: a zip bomb
    SPLIT_TOO_MANY_MESSAGES = ("FS-SRC-062", "too-costly")
    SPLIT_MESSAGE_TOO_LARGE = ("FS-SRC-063", "too-costly")

    TPL_SYNTAX = ("FS-TPL-001", "invalid")
    TPL_UNKNOWN_SNIPPET = ("FS-TPL-002", "not-found")
    TPL_INCLUDE_CYCLE = ("FS-TPL-003", "invalid")
    TPL_DYNAMIC_INCLUDE = ("FS-TPL-004", "security")
    TPL_BAD_LOOKUP_TABLE = ("FS-TPL-005", "invalid")

    RND_UNDEFINED = ("FS-RND-001", "processing")
    RND_FILTER_INPUT = ("FS-RND-002", "processing")
    RND_SANDBOX = ("FS-RND-003", "security")
    RND_UNKNOWN_TABLE = ("FS-RND-004", "not-found")
    RND_FAIL_CALLED = ("FS-RND-005", "business-rule")
    RND_TYPE = ("FS-RND-006", "processing")
    RND_MISSING_KEY = ("FS-RND-007", "not-found")  # a warning: a column or misspelt key the source does not have
    RND_SWAPPED_ARGUMENTS = ("FS-RND-008", "processing")  # a warning: coding('http://…', '718-7') and the like
    RND_UNEXPECTED = ("FS-RND-099", "exception")

    PST_NOT_JSON = ("FS-PST-001", "structure")
    PST_NOT_RESOURCE = ("FS-PST-002", "structure")
    PST_DUPLICATE_CONFLICT = ("FS-PST-003", "duplicate")

    VAL_STRUCTURE = ("FS-VAL-001", "structure")
    VAL_UNKNOWN_TYPE = ("FS-VAL-002", "not-supported")
    VAL_BAD_DATE = ("FS-VAL-003", "value")
    VAL_BAD_REFERENCE = ("FS-VAL-004", "value")
    VAL_BAD_CODE = ("FS-VAL-005", "code-invalid")
    VAL_CARDINALITY = ("FS-VAL-006", "required")  # fewer or more repetitions than the definition allows
    VAL_BAD_VALUE = ("FS-VAL-007", "value")  # a primitive outside its R4 regular expression or range
    VAL_INVARIANT = ("FS-VAL-008", "invariant")  # a FHIRPath constraint (obs-6, dom-3, …) does not hold
    VAL_FIXED_PATTERN = ("FS-VAL-009", "value")  # a profile's fixed[x] or pattern[x] value is not met
    VAL_SLICING = ("FS-VAL-010", "structure")  # a slice's cardinality, a closed slicing, an ordered slicing
    VAL_UNKNOWN_PROFILE = ("FS-VAL-011", "not-found")  # meta.profile or profile= names a profile not loaded
    VAL_UNRESOLVED_REFERENCE = ("FS-VAL-012", "not-found")  # #id without its contained resource, urn:uuid not in Bundle

    LIM_INPUT_BYTES = ("FS-LIM-001", "too-costly")
    LIM_RENDER_TIME = ("FS-LIM-002", "timeout")
    LIM_LOOP_ITERATIONS = ("FS-LIM-003", "too-costly")
    LIM_OUTPUT_BYTES = ("FS-LIM-004", "too-costly")
    LIM_INCLUDE_DEPTH = ("FS-LIM-005", "too-costly")
    LIM_RECURSION = ("FS-LIM-006", "too-costly")
    LIM_VALUE_SIZE = ("FS-LIM-007", "too-costly")

    @property
    def stage(self) -> Stage:
        prefix = self.code.split("-")[1]
        return {
            "SRC": Stage.SOURCE,
            "TPL": Stage.TEMPLATE,
            "RND": Stage.RENDER,
            "PST": Stage.POSTPROCESS,
            "VAL": Stage.VALIDATE,
            "LIM": Stage.LIMIT,
        }[prefix]


@dataclass
class MappingError(Exception):
    """A failure a person can act on: what went wrong, in which stage, and where in the template (when known)."""

    error: ErrorCode
    message: str
    template: str | None = None
    line: int | None = None
    column: int | None = None
    expression: list[str] = field(default_factory=list)  # FHIRPath of the offending element (validate stage)
    severity: str = "error"
    offset: int | None = None  # character offset in the rendered output (post-process errors), for tracing

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def fatal(self) -> bool:
        """An error that stops the output being used (warnings and information do not)."""
        return self.severity in ("error", "fatal")

    @property
    def stage(self) -> Stage:
        return self.error.stage

    def located(self, template: str | None, line: int | None, column: int | None = None) -> MappingError:
        """The same error pointed at a template line (kept if it already has one)."""
        if self.line is None and line is not None:
            self.template, self.line, self.column = template, line, column
        return self

    def where(self) -> str:
        if self.template is None:
            return ""
        place = f"{self.template}:{self.line}" if self.line else self.template
        return f"{place}:{self.column}" if self.column else place

    def as_dict(self) -> dict:
        """The JSON shape the studio API returns for one error."""
        return {
            "code": self.code,
            "stage": self.stage.value,
            "severity": self.severity,
            "message": self.message,
            "template": self.template,
            "line": self.line,
            "column": self.column,
            "expression": self.expression,
        }

    def as_issue(self) -> dict:
        """One OperationOutcome.issue."""
        location = None
        if self.template:
            location = [{"url": "template", "valueString": self.template}]
            if self.line:
                location.append({"url": "line", "valueInteger": self.line})
            if self.column:
                location.append({"url": "column", "valueInteger": self.column})
        where = f", at {self.where()}" if self.template else ""
        return issue(
            self.code,
            self.error.fhir_type,
            self.message,
            severity=self.severity,
            diagnostics=f"{self.stage.value} stage{where}",
            expression=self.expression,
            location=location,
        )


def issue(
    code: str,
    fhir_type: str,
    text: str,
    *,
    severity: str = "error",
    diagnostics: str | None = None,
    expression: list[str] | None = None,
    location: list[dict] | None = None,
) -> dict:
    """The one builder of an OperationOutcome.issue: the FS code in details.coding (clients match on it), the message
    in details.text, where it happened in diagnostics, the template place as an extension, FHIRPath in expression."""
    built: dict = {
        "severity": severity,
        "code": fhir_type,
        "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}], "text": text},
    }
    if diagnostics:
        built["diagnostics"] = diagnostics
    if location:
        built["extension"] = [{"url": LOCATION_EXTENSION, "extension": location}]
    if expression:
        built["expression"] = expression
    return built


def operation_outcome(errors: list[MappingError]) -> dict:
    """An OperationOutcome for these errors; with none, the single 'all ok' information issue FHIR expects."""
    if not errors:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "details": {"text": "All OK"}}],
        }
    return {"resourceType": "OperationOutcome", "issue": [error.as_issue() for error in errors]}
