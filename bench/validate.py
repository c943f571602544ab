"""FHIR R4 validation throughput on one core: orjson parse (the floor), fhir.resources R4B model_validate (the
validator before issue 13), the engine's validator with the base definitions, and with a profile.

    taskset -c 0 .venv/bin/python bench/validate.py              # 7 interleaved rounds
    taskset -c 0 .venv/bin/python bench/validate.py --rounds 3 --no-fhir-resources
    taskset -c 0 .venv/bin/python bench/validate.py --no-fhir-resources --distinct  # each distinct resource once

The resources are every resource of the valid corpus outputs (Bundle entries one by one, as a pipeline validates a
message's resources, plus the single resources), the same list for every row. The validator remembers strings and
small data type values it found valid; "cold" passes start with those caches empty (what one pass over new data
sees), "warm" ones keep them from the previous rounds (a worker that has seen these values before). Rounds interleave
the rows so a busy neighbour on the shared machine slows all of them alike; the median round is reported. Run by
hand, never in CI; copy the table into bench/README.md with the machine it ran on.

Most corpus resources repeat another one (the converters' test messages share their Location, Organization and
Practitioner): --distinct keeps one of each, which is closer to what a stream of new data costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mappings.engine.definitions import core  # noqa: E402
from mappings.engine.validation import validate_resource  # noqa: E402
from mappings.engine.validation.compile import compiler_for  # noqa: E402

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))
GLOBS = ("fhir-converter/expected/hl7v2/*.json", "fhir-converter/expected/ccda/*.json", "more/fhir-r4/valid/*.json")
US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"


def corpus_resources() -> list[dict]:
    """Each resource of the corpus outputs our validator accepts without error (so every row does the same work)."""
    found = []
    for pattern in GLOBS:
        for path in sorted(CORPUS.glob(pattern)):
            resource = orjson.loads(path.read_bytes().decode("utf-8-sig"))
            items = [e["resource"] for e in resource.get("entry", ()) if "resource" in e]
            for item in items if resource.get("resourceType") == "Bundle" else [resource]:
                item.pop("meta", None)  # meta.profile names US Core 9.0.0: base validation only in these rows
                if not any(issue.severity == "error" for issue in validate_resource(item)):
                    found.append(item)
    return found


def fhir_resources_validator() -> Callable[[dict], object]:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    def validate(resource: dict) -> object:
        try:
            return get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        except ValidationError as exc:  # R4B is not R4: a verdict all the same, and its cost counts
            return exc

    return validate


def r4b_knows(resource_type: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type) is not None
    except (KeyError, ValueError, AttributeError):
        return False


def one_pass(work: Callable[[object], object], items: list) -> float:
    # CPU time of this process, not wall time: on the shared machine another process on the same core would
    # otherwise count as validation time (the process is pinned to one core, so this is per core).
    started = time.process_time()
    for item in items:
        work(item)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-fhir-resources", action="store_true", help="leave out the slow R4B row")
    parser.add_argument(
        "--distinct", action="store_true", help="each distinct resource once (the corpus repeats most of them)"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    core()
    resources = corpus_resources()
    texts = [orjson.dumps(resource) for resource in resources]
    repeated = len(texts) - len(set(texts))
    if args.distinct:  # repeats are what the value caches feed on: without them, what new data costs
        kept = {text: resource for text, resource in zip(texts, resources, strict=True)}
        texts, resources = list(kept), list(kept.values())
    patients = [resource for resource in resources if resource["resourceType"] == "Patient"]
    for patient in patients:  # what US Core requires, so the profile row measures a pass, not error reporting
        patient.setdefault("gender", "unknown")
        patient.setdefault("identifier", [{"system": "urn:x", "value": "1"}])
        patient.setdefault("name", [{"family": "x"}])
    compiler = compiler_for(core())

    def cold(resource: dict) -> object:
        return validate_resource(resource)

    rows: list[tuple[str, Callable, list]] = [
        ("orjson parse (floor)", orjson.loads, texts),
        ("engine validator, base, cold caches", cold, resources),
        ("engine validator, base, warm caches", validate_resource, resources),
        ("engine validator, base: Patients", validate_resource, patients),
        (
            "engine validator, US Core Patient: Patients",
            lambda r: validate_resource(r, profiles=[US_CORE_PATIENT]),
            patients,
        ),
    ]
    if not args.no_fhir_resources:
        r4b_types = {name for name in {r["resourceType"] for r in resources} if r4b_knows(name)}
        same = [resource for resource in resources if resource["resourceType"] in r4b_types]
        rows.insert(1, ("fhir.resources R4B model_validate", fhir_resources_validator(), same))
    for _, work, items in rows:  # warm-up: compile the definitions, import the models
        one_pass(work, items[:50])
    timings: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for _ in range(args.rounds):
        for name, work, items in rows:
            if work is cold:  # valid strings and data type values remembered from earlier passes are forgotten
                compiler.forget_values()
            timings[name].append(one_pass(work, items))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    which = "distinct" if args.distinct else f"corpus ({repeated:,} of them repeats of another)"
    print(
        f"# one pinned core, CPU time, median of {args.rounds} interleaved rounds; {len(resources):,} {which} resources"
    )
    print(f"# load average {os.getloadavg()[0]:.2f}\n")
    print("| row | resources | ms per pass | µs/resource | resources/s | × orjson parse |")
    print("|---|---:|---:|---:|---:|---:|")
    floor = statistics.median(timings[rows[0][0]])
    for name, _, items in rows:
        seconds = statistics.median(timings[name])
        rate = len(items) / seconds
        ratio = f"{seconds / floor:.2f}" if len(items) == len(resources) else "—"  # the same list as the floor only
        print(f"| {name} | {len(items):,} | {seconds * 1000:.1f} | {1e6 / rate:.1f} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
