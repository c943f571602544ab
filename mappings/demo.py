"""The demo content: every example under `FHIR_STUDIO["EXAMPLES_DIR"]` imported into the studio through the actions
(so it has owners, revisions and audit rows like anything a person made), each mapping published as version 1 with a
recorded test run. `fhirstudio demo` (called by scripts/run) loads it.

Idempotent: an existing snippet, lookup table or mapping of the same name is left alone, so a second load (or a load
after people changed the demo mappings) changes nothing.

The studio has one snippet and one lookup table per name, while an example may carry its own copy of a shared one
(`examples/<name>/snippets/…`, `examples/<name>/lookup/…`). The shared copy is imported; a local one that differs from
it is skipped with a warning, because importing it would silently change what the other examples render.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from mappings import actions
from mappings.compiling import imported_names
from mappings.errors import StudioError
from mappings.examples import Example, list_examples
from mappings.models import DataSource, Facade, FacadeResource, LookupTable, Mapping, Snippet

logger = logging.getLogger(__name__)

VERSION_MESSAGE = "Demo content"


@dataclass
class DemoSummary:
    """What one load did: names created, names that already existed, and anything a person should look at."""

    snippets: list[str] = field(default_factory=list)
    lookup_tables: list[str] = field(default_factory=list)
    mappings: list[str] = field(default_factory=list)
    samples: int = 0
    versions: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def created_anything(self) -> bool:
        return bool(self.snippets or self.lookup_tables or self.mappings or self.samples or self.versions)

    def lines(self) -> list[str]:
        found = [
            f"Demo content: {len(self.mappings)} mappings ({self.samples} samples), {len(self.snippets)} snippets, "
            f"{len(self.lookup_tables)} lookup tables created; {len(self.existing)} already there.",
        ]
        found += [f"  published {version}" for version in self.versions]
        found += [f"  warning: {warning}" for warning in self.warnings]
        return found


@dataclass(frozen=True)
class _Source:
    """One file of the example library: where it came from, and its content (snippet text or table data)."""

    origin: str
    content: object


def load_demo(acting_user: AbstractBaseUser | None, examples_dir: Path | None = None) -> DemoSummary:
    """Import every example (snippets and lookup tables first, then one mapping each with its samples) and publish
    version 1 of each new mapping. Each step is its own action (and transaction): a failure leaves what was already
    imported in place, and the next load carries on from there."""
    examples_dir = Path(examples_dir or settings.FHIR_STUDIO["EXAMPLES_DIR"])
    examples = list_examples(examples_dir)
    summary = DemoSummary()
    _import_snippets(_library_snippets(examples_dir, examples, summary), acting_user, summary)
    _import_tables(_library_tables(examples_dir, examples, summary), acting_user, summary)
    for example in examples:
        _import_mapping(example, acting_user, summary)
    load_demo_facade(acting_user, examples_dir)  # the facade serves the mappings just published
    load_demo_smart_facade(acting_user)
    logger.info(
        "demo content loaded: %d mappings, %d snippets, %d tables created, %d existing, %d warnings",
        len(summary.mappings),
        len(summary.snippets),
        len(summary.lookup_tables),
        len(summary.existing),
        len(summary.warnings),
    )
    return summary


# --- reading the library --------------------------------------------------------------------------------------------


def _pick(found: dict[str, _Source], name: str, candidate: _Source, kind: str, summary: DemoSummary) -> None:
    """Keep the first copy of a name (shared copies are offered first); warn about a different one, keep the same."""
    kept = found.get(name)
    if kept is None:
        found[name] = candidate
    elif kept.content != candidate.content:
        summary.warnings.append(
            f"{candidate.origin} differs from {kept.origin}: skipped (the studio has one {kind} per name)."
        )


def _library_snippets(examples_dir: Path, examples: list[Example], summary: DemoSummary) -> dict[str, str]:
    found: dict[str, _Source] = {}
    shared = sorted({name for example in examples for name in example.snippets if (examples_dir / name).is_file()})
    for name in shared:
        _pick(found, name, _Source(f"examples/{name}", (examples_dir / name).read_text()), "snippet", summary)
    for example in examples:
        for name, text in sorted(example.snippets.items()):
            if (example.path / name).is_file():
                _pick(found, name, _Source(f"examples/{example.name}/{name}", text), "snippet", summary)
    return {name: source.content for name, source in found.items()}


def _table_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix in (".json", ".csv"))


def _table_data(path: Path) -> dict:
    """The studio's table form (mappings/engine/lookup.py): JSON as written, CSV with the columns the engine reads."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    rows = [
        {
            "source": row.get("source_code"),
            "code": row.get("target_code"),
            "display": row.get("target_display") or None,
            "source_system": row.get("source_system") or None,
            "system": row.get("target_system") or None,
        }
        for row in csv.DictReader(io.StringIO(path.read_text()))
    ]
    return {"entries": rows}


def _library_tables(examples_dir: Path, examples: list[Example], summary: DemoSummary) -> dict[str, dict]:
    found: dict[str, _Source] = {}
    for path in _table_files(examples_dir / "lookup"):
        _pick(found, path.stem, _Source(f"examples/lookup/{path.name}", _table_data(path)), "lookup table", summary)
    for example in examples:
        for path in _table_files(example.path / "lookup"):
            origin = f"examples/{example.name}/lookup/{path.name}"
            _pick(found, path.stem, _Source(origin, _table_data(path)), "lookup table", summary)
    return {name: source.content for name, source in found.items()}


# --- importing ------------------------------------------------------------------------------------------------------


def _dependency_order(snippets: dict[str, str]) -> list[str]:
    """Imported snippets before the ones importing them, so each is checked against the snippets it uses."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting or name not in snippets:
            return
        visiting.add(name)  # an import cycle is the engine's to report, not ours to loop on
        for imported in imported_names(snippets[name]):
            visit(imported)
        ordered.append(name)

    for name in sorted(snippets):
        visit(name)
    return ordered


def _import_snippets(snippets: dict[str, str], acting_user: AbstractBaseUser | None, summary: DemoSummary) -> None:
    stored = set(Snippet.objects.filter(name__in=snippets).values_list("name", flat=True))
    for name in _dependency_order(snippets):
        if name in stored:
            summary.existing.append(name)
            continue
        try:
            actions.do_create_snippet(acting_user=acting_user, name=name, text=snippets[name])
        except StudioError as error:
            summary.warnings.append(f"snippet {name}: {error.message}")
            continue
        summary.snippets.append(name)


def _import_tables(tables: dict[str, dict], acting_user: AbstractBaseUser | None, summary: DemoSummary) -> None:
    stored = set(LookupTable.objects.filter(name__in=tables).values_list("name", flat=True))
    for name, data in sorted(tables.items()):
        if name in stored:
            summary.existing.append(f"lookup table {name}")
            continue
        try:
            actions.do_create_lookup_table(acting_user=acting_user, name=name, data=data)
        except StudioError as error:
            summary.warnings.append(f"lookup table {name}: {error.message}")
            continue
        summary.lookup_tables.append(name)


def _tables_named_in(example: Example) -> list[str]:
    """The example's tables its template or snippets name in a string literal. The draft finds `translate("x")` by
    itself, but not a name passed through a variable or `map("translate", "x")`, so list those by hand."""
    texts = [example.template, *(example.snippets.get(name, "") for name in _closure(example))]
    return sorted(
        name for name in example.lookup_tables if any(re.search(rf"""["']{re.escape(name)}["']""", t) for t in texts)
    )


def _closure(example: Example) -> set[str]:
    found: set[str] = set()
    pending = set(imported_names(example.template))
    while pending:
        name = pending.pop()
        if name in found or name not in example.snippets:
            continue
        found.add(name)
        pending |= set(imported_names(example.snippets[name]))
    return found


def _output_kind(example: Example) -> str:
    """Bundle, or the resource type the expected outputs show (json-patient makes a Patient)."""
    for case in example.cases:
        expected = case.expected()
        if isinstance(expected, dict) and expected.get("resourceType"):
            return expected["resourceType"]
    return "Bundle"


def _import_mapping(example: Example, acting_user: AbstractBaseUser | None, summary: DemoSummary) -> None:
    if Mapping.objects.filter(slug=example.name).exists():
        summary.existing.append(f"mapping {example.name}")
        return
    mapping = actions.do_create_mapping(
        acting_user=acting_user,
        slug=example.name,
        title=example.title[:200],
        description=example.description,
        source_format=example.source_format,
        source_options=example.source_options,
        timezone=example.timezone,
        strict=example.strict,
        output_kind=_output_kind(example),
        template=example.template,
    )
    summary.mappings.append(example.name)
    draft = mapping.draft
    missing_tables = sorted(set(_tables_named_in(example)) - set(draft.table_names))
    if missing_tables:
        actions.do_save_draft(
            mapping,
            acting_user=acting_user,
            template=draft.template,
            expected_revision=draft.revision,
            extra_tables=[*draft.table_names, *missing_tables],
        )
    for case in example.cases:
        actions.do_create_sample(
            mapping,
            acting_user=acting_user,
            name=case.name,
            # Bytes decoded by hand: read_text() would turn HL7's CR segment separators into LF.
            payload=case.payload().decode("utf-8"),
            expected=case.expected(),
            ignore_paths=[],  # timestamp and lastUpdated are masked on every comparison (mappings/samples.py)
            assertions=list(case.assertions),
        )
        summary.samples += 1
    try:
        version = actions.do_publish_version(mapping, acting_user=acting_user, message=VERSION_MESSAGE)
    except StudioError as error:
        summary.warnings.append(f"mapping {example.name} was not published: {error.message}")
        return
    run = version.test_run
    summary.versions.append(f"{example.name} v{version.number}: {run.passed} passed, {run.failed} failed")
    if run.failed:
        summary.warnings.append(f"mapping {example.name} v{version.number}: {run.failed} sample(s) failed")


# --- the demo facade ------------------------------------------------------------------------------------------------
# `demo` (/fhir/demo/, open): stored HL7 v2 messages from the shared corpus (and the examples' own samples), served
# through the published ADT, ORU and VXU demo mappings.

BINDINGS = {  # example mapping → the resource types the facade serves from its messages
    "hl7v2-adt-a01": ("Patient", "Encounter"),
    "hl7v2-oru-r01": ("Observation", "DiagnosticReport"),
    "hl7v2-vxu-v04": ("Immunization",),
}
# Azure FHIR-Converter's root template names → the demo mappings that do their job, so a client written for Azure's
# $convert-data (rootTemplate=ADT_A01, inputDataType=Hl7v2) works against /fhir/demo/ unchanged.
AZURE_TEMPLATES = {
    "ADT_A01": "hl7v2-adt-a01",
    "ADT_A04": "hl7v2-adt-a01",
    "ADT_A08": "hl7v2-adt-a01",
    "ORU_R01": "hl7v2-oru-r01",
    "VXU_V04": "hl7v2-vxu-v04",
    "CCD": "ccda-ccd",
    "ConsultationNote": "ccda-ccd",
    "OperativeNote": "ccda-ccd",
    "TransferSummary": "ccda-ccd",
    "ExamplePatient": "json-patient",
}


def load_demo_facade(acting_user: AbstractBaseUser | None, examples_dir: Path | None = None) -> Facade | None:
    if Facade.objects.filter(slug="demo").exists():
        return None
    examples = {
        example.name: example for example in list_examples(Path(examples_dir or settings.FHIR_STUDIO["EXAMPLES_DIR"]))
    }
    corpus_dir = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
    published = set(Mapping.objects.filter(latest_version__isnull=False).values_list("slug", flat=True))
    facade = actions.do_create_facade(
        acting_user=acting_user,
        slug="demo",
        title="Demo facade over stored HL7 v2 messages",
        convert_templates={name: slug for name, slug in AZURE_TEMPLATES.items() if slug in published},
    )
    for name, resource_types in BINDINGS.items():
        mapping = Mapping.objects.filter(slug=name).select_related("latest_version").first()
        example = examples.get(name)
        if mapping is None or mapping.latest_version is None or example is None:
            continue
        records = [(f"sample/{case.name}", case.payload().decode(errors="replace")) for case in example.cases]
        if corpus_dir.is_dir():
            records += [
                (path.relative_to(corpus_dir).as_posix(), path.read_text(errors="replace"))
                for path in example.corpus_files(corpus_dir)
            ]
        source = DataSource.objects.filter(name=f"{name}-messages").first() or actions.do_create_data_source(
            acting_user=acting_user,
            name=f"{name}-messages",
            source_format="hl7v2",
            description=f"HL7 v2 messages for {name}: the shared corpus and the example's samples",
        )
        actions.do_upload_records(source, acting_user=acting_user, records=records)
        for resource_type in resource_types:
            binding = actions.do_bind_resource(
                facade, acting_user=acting_user, resource_type=resource_type, mapping=mapping, source=source
            )
            deployment = actions.do_deploy(binding, acting_user=acting_user, version=mapping.latest_version)
            logger.info("demo facade: %s from %s, %d indexed", resource_type, name, deployment.indexed)
    _demo_group(facade, acting_user)
    return facade


def _demo_group(facade: Facade, acting_user: AbstractBaseUser | None) -> None:
    """Group/demo-ward: the first three patients the demo serves, so a Group export works out of the box."""
    patients = FacadeResource.objects.filter(
        deployment__binding__facade=facade, deployment__ready=True, resource_type="Patient"
    ).order_by("resource_id")
    patient_ids = list(patients.values_list("resource_id", flat=True)[:3])
    if patient_ids:
        actions.do_save_patient_group(
            facade, acting_user=acting_user, group_id="demo-ward", name="Demo ward", patient_ids=patient_ids
        )


# `demo-smart` (/fhir/demo-smart/): the demo's types, from the same sources and versions, protected by SMART Backend
# Services; `fhirstudio smart-client demo-smart --scope system/*.rs --out DIR` makes a client app that can use it.
DEMO_SMART = "demo-smart"


def load_demo_smart_facade(acting_user: AbstractBaseUser | None) -> Facade | None:
    demo = Facade.objects.filter(slug="demo").first()
    if demo is None or Facade.objects.filter(slug=DEMO_SMART).exists():
        return None
    facade = actions.do_create_facade(
        acting_user=acting_user,
        slug=DEMO_SMART,
        title="Demo facade, protected by SMART Backend Services",
        auth_mode=Facade.AuthMode.SMART_BACKEND,
        convert_templates=demo.convert_templates,
    )
    for binding in demo.bindings.select_related("mapping", "source").order_by("id"):
        live = binding.live_deployment
        if live is None:
            continue
        served = actions.do_bind_resource(
            facade,
            acting_user=acting_user,
            resource_type=binding.resource_type,
            mapping=binding.mapping,
            source=binding.source,
        )
        actions.do_deploy(served, acting_user=acting_user, version=live.version)
    for group in demo.groups.all():
        actions.do_save_patient_group(
            facade, acting_user=acting_user, group_id=group.group_id, name=group.name, patient_ids=group.patient_ids
        )
    return facade


# `demo-store` (/fhir/demo-store/, open): every R4 type, read and write, over the empty FHIR store `demo-store`, so a
# newcomer can push resources (a transaction Bundle, a create) and read them back at once. `fhirstudio demo` loads it
# after load_demo, as a step of its own: tests that load the demo's mappings and facades do not get its identity
# mapping (fhir-store) and 146 bindings among them.
DEMO_STORE = "demo-store"


def load_demo_store_facade(acting_user: AbstractBaseUser | None) -> Facade | None:
    if Facade.objects.filter(slug=DEMO_STORE).exists():
        return None
    from mappings.actions.store_facades import do_create_store_facade

    return do_create_store_facade(
        acting_user=acting_user, slug=DEMO_STORE, title="Demo FHIR store (read and write)", store=DEMO_STORE
    )
