"""Stage 4: check the output is valid FHIR R4, as OperationOutcome issues with FHIRPath expressions.

One validator for every caller (preview, test runs, publish, `$validate`, batch, export): the engine's own
(`validation/`), which validates R4 as R4 against the shipped StructureDefinitions, every R4 resource type included,
with the profiles the resource names in meta.profile and those the caller asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .definitions import Registry
from .errors import ErrorCode, MappingError
from .validation import validate_resource

log = logging.getLogger(__name__)


def validate_output(
    resource: dict, *, profiles: Sequence[str] = (), registry: Registry | None = None
) -> list[MappingError]:
    """Every issue of the output: structure, values, codes, invariants, references, its meta.profile and `profiles`
    (a layered registry brings uploaded profiles; None is the core definitions)."""
    try:
        return validate_resource(resource, profiles=profiles, registry=registry)
    except RecursionError:
        return [MappingError(ErrorCode.VAL_STRUCTURE, "The resource is nested too deeply to validate.")]
    except Exception as exc:  # a validator bug must not lose the output or answer a 500
        log.exception("validator failed")
        return [MappingError(ErrorCode.VAL_STRUCTURE, f"The validator could not check this resource ({exc!r}).")]
