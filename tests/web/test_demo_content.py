"""The demo content the README's run command loads: every example becomes a studio mapping, published and tested,
built through the actions; loading it again changes nothing."""

from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings

from mappings import models
from mappings.demo import load_demo
from tests.api.conftest import _fresh_compile_cache  # noqa: F401 — shared fixture
from tests.conftest import all_examples

pytestmark = pytest.mark.django_db
EXAMPLES = all_examples()


def counts() -> dict[str, int]:
    found = {
        model.__name__: model.objects.count()
        for model in (
            models.Mapping,
            models.MappingVersion,
            models.SampleCase,
            models.Snippet,
            models.SnippetVersion,
            models.LookupTable,
            models.LookupTableVersion,
            models.TestRun,
            models.AuditEvent,
        )
    }
    found["draft revisions"] = sum(models.Draft.objects.values_list("revision", flat=True))
    return found


def test_it_publishes_every_example_as_a_tested_version_1() -> None:
    admin = User.objects.create_superuser("admin", "admin@example.org", "pw")
    summary = load_demo(admin)
    assert summary.warnings == []
    assert sorted(summary.mappings) == sorted(example.name for example in EXAMPLES)
    for example in EXAMPLES:
        mapping = models.Mapping.objects.select_related("latest_version__test_run").get(slug=example.name)
        version = mapping.latest_version
        assert (version.number, version.message, version.author) == (1, "Demo content", admin)
        run = version.test_run
        assert (run.passed, run.failed) == (len(example.cases), 0), [r["problems"] for r in run.results]
        assert mapping.samples.count() == len(example.cases)
        assert (mapping.title, mapping.source_format, mapping.timezone, mapping.strict) == (
            example.title,
            example.source_format,
            example.timezone,
            example.strict,
        )
        assert mapping.owner == admin


def test_it_stores_samples_as_the_example_has_them() -> None:
    load_demo(None)
    adt = next(example for example in EXAMPLES if example.name == "hl7v2-adt-a01")
    case = adt.cases[0]
    sample = models.SampleCase.objects.get(mapping__slug=adt.name, name=case.name)
    assert sample.payload.encode() == case.payload()  # HL7's CR separators kept
    assert sample.expected == case.expected()
    assert sample.assertions == list(case.assertions)


def test_it_imports_the_shared_library_through_the_actions() -> None:
    summary = load_demo(None)
    root = EXAMPLES[0].path.parent
    shared_snippets = {
        "snippets/" + path.relative_to(root / "snippets").as_posix() for path in root.glob("snippets/**/*.j2")
    }
    assert shared_snippets <= set(models.Snippet.objects.values_list("name", flat=True))
    assert {path.stem for path in root.glob("lookup/*.json")} <= set(
        models.LookupTable.objects.values_list("name", flat=True)
    )
    assert "adt-event-encounter-status" in summary.lookup_tables  # an example-local table
    audited = models.AuditEvent.objects.filter(action="snippet.created").count()
    assert audited == models.Snippet.objects.count() == len(summary.snippets)
    assert models.AuditEvent.objects.filter(action="version.published").count() == len(EXAMPLES)


def test_it_changes_nothing_when_loaded_twice() -> None:
    load_demo(None)
    before = counts()
    summary = load_demo(None)
    assert not summary.created_anything
    assert counts() == before
    assert "mapping json-patient" in summary.existing


def test_it_leaves_a_mapping_people_changed_alone() -> None:
    load_demo(None)
    models.Mapping.objects.filter(slug="json-patient").update(title="Ours now")
    load_demo(None)
    assert models.Mapping.objects.get(slug="json-patient").title == "Ours now"


def test_it_skips_a_local_copy_that_differs_from_a_shared_one_with_a_warning(tmp_path: Path) -> None:
    library = tmp_path / "examples"
    (library / "snippets" / "common").mkdir(parents=True)
    (library / "snippets" / "common" / "names.j2").write_text("{% macro family(n) %}{{ n }}{% endmacro %}")
    (library / "lookup").mkdir()
    (library / "lookup" / "gender.json").write_text('{"entries": {"M": "male"}}')
    for name, local in (("one", False), ("two", True)):
        folder = library / name
        (folder / "samples").mkdir(parents=True)
        (folder / "mapping.json").write_text('{"title": "T", "source_format": "json"}')
        (folder / "template.j2").write_text(
            '{% import "snippets/common/names.j2" as n %}'
            '{"resourceType": "Patient", "gender": "{{ msg.g | translate_code(\'gender\') }}",'
            ' "name": [{"family": "{{ n.family(msg.f) }}"}]}'
        )
        (folder / "samples" / "a.json").write_text('{"g": "M", "f": "Ng"}')
        if local:
            (folder / "snippets" / "common").mkdir(parents=True)
            (folder / "snippets" / "common" / "names.j2").write_text("{% macro family(n) %}X{% endmacro %}")
            (folder / "lookup").mkdir()
            (folder / "lookup" / "gender.json").write_text('{"entries": {"M": "female"}}')
            (folder / "lookup" / "local.csv").write_text("source_code,target_code\nA,b\n")
    summary = load_demo(None, library)
    assert sorted(summary.snippets) == ["snippets/common/names.j2"]
    assert sorted(summary.lookup_tables) == ["gender", "local"]
    assert models.Snippet.objects.get().text.startswith("{% macro family(n) %}{{ n }}")
    assert models.LookupTable.objects.get(name="gender").data == {"entries": {"M": "male"}}
    assert models.LookupTable.objects.get(name="local").data["entries"][0]["code"] == "b"
    assert len(summary.warnings) == 2
    assert all("differs from" in warning for warning in summary.warnings)
    assert sorted(summary.mappings) == ["one", "two"]


def test_it_is_loaded_by_the_run_commands_demo_step() -> None:
    out = StringIO()
    with override_settings(FHIR_STUDIO={**settings.FHIR_STUDIO, "DEMO_PASSWORD": "pw"}):
        call_command("fhirstudio", "demo", stdout=out)
        call_command("fhirstudio", "demo", stdout=out)
    admin = User.objects.get(username="admin")
    assert models.Mapping.objects.filter(owner=admin).count() == len(EXAMPLES)
    assert f"Demo content: {len(EXAMPLES)} mappings" in out.getvalue()
    assert "Demo content: 0 mappings (0 samples), 0 snippets, 0 lookup tables created" in out.getvalue()
