"""Impact preview: run every stored sample on two sides (a version or the draft) and report whose output changes,
before a publish or a restore. Writes nothing; the runs use the same pinned clock as the tests, so only real changes
show."""

from __future__ import annotations

import difflib
import json

from mappings.compiling import compile_draft, compile_version
from mappings.conf import engine_limits
from mappings.engine import CompiledMapping, MappingError
from mappings.models import Mapping, MappingVersion, SampleCase
from mappings.samples import mask, mask_paths, run_case

Side = MappingVersion | None  # None: the draft


def _compile(mapping: Mapping, side: Side) -> tuple[CompiledMapping | None, list[dict]]:
    try:
        return (compile_version(side) if side is not None else compile_draft(mapping)), []
    except MappingError as error:
        return None, [error.as_dict()]


def _run(compiled: CompiledMapping | None, compile_errors: list[dict], sample: SampleCase) -> tuple[object, list[dict]]:
    """(output with the sample's ignorable paths masked, errors). No expectations: only the output is compared."""
    if compiled is None:
        return None, compile_errors
    outcome = run_case(
        compiled, sample.name, sample.payload, source_format=sample.source_format or None, limits=engine_limits()
    )
    result = outcome.result
    errors = [error.as_dict() for error in result.errors if error.fatal]
    output = mask_paths(result.output, sample.ignore_paths) if result.output is not None else None
    return output, errors


def _pretty(output: object) -> list[str]:
    return json.dumps(mask(output), indent=2, sort_keys=True).splitlines() if output is not None else []


def side_name(side: Side) -> str:
    return "draft" if side is None else f"v{side.number}"


def impact(mapping: Mapping, old: Side, new: Side) -> dict:
    old_compiled, old_compile_errors = _compile(mapping, old)
    new_compiled, new_compile_errors = _compile(mapping, new)
    cases = []
    for sample in mapping.samples.order_by("name"):
        old_output, old_errors = _run(old_compiled, old_compile_errors, sample)
        new_output, new_errors = _run(new_compiled, new_compile_errors, sample)
        before, after = _pretty(old_output), _pretty(new_output)
        diff = "\n".join(difflib.unified_diff(before, after, side_name(old), side_name(new), lineterm="", n=2))
        changed = before != after or [e["code"] for e in old_errors] != [e["code"] for e in new_errors]
        cases.append(
            {
                "case": sample.name,
                "changed": changed,
                "from_ok": not old_errors,
                "to_ok": not new_errors,
                "diff": diff,
                "from_errors": old_errors,
                "to_errors": new_errors,
            }
        )
    changed = sum(case["changed"] for case in cases)
    return {
        "from": side_name(old),
        "to": side_name(new),
        "cases": cases,
        "changed": changed,
        "unchanged": len(cases) - changed,
    }
