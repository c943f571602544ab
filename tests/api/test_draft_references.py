"""The snippet and table names a draft stores when it is saved come from the engine's syntax tree
(compiling.references → template_references): the same names the regexes found before for every example, plus the
tables given to `map("translate", …)`, which the regexes missed; a draft saved while it does not parse keeps them."""

import re

import pytest

from mappings import actions
from mappings.compiling import dynamic_table_uses, references, snippet_closure
from mappings.engine.filters import TABLES_READ
from mappings.examples import Example
from mappings.models import LookupTable, Snippet
from tests.conftest import all_examples

pytestmark = pytest.mark.django_db

# What compiling.py matched before the engine read the syntax tree: the oracle for "names come out as before".
OLD_IMPORTS = re.compile(r"""\{%-?\s*(?:import|include|from|extends)\s+["']([^"']+)["']""")
OLD_TABLES = re.compile(r"""translate(?:_code)?\s*\(\s*["']([A-Za-z0-9_\-]+)["']""")
FILTERS = re.compile(r"\|\s*(\w+)")
# Tables the syntax tree finds that the regexes did not: a literal table name handed to translate through map().
GAINED = {"ccda-ccd": {"ccda-section-kinds"}}


def names_before(example: Example) -> tuple[list[str], list[str]]:
    found: dict[str, str] = {}
    pending = set(OLD_IMPORTS.findall(example.template))
    while pending:
        rows = {name: example.snippets[name] for name in pending if name in example.snippets}
        found.update(rows)
        pending = {name for text in rows.values() for name in OLD_IMPORTS.findall(text)} - set(found)
    texts = [example.template, *found.values()]
    tables = set().union(*(OLD_TABLES.findall(text) for text in texts))
    # Filters that read tables themselves (the HL7 v2 data types) name them too.
    tables |= {table for text in texts for name in FILTERS.findall(text) for table in TABLES_READ.get(name, ())}
    return sorted(found), sorted(tables & set(example.lookup_tables))


def store_library(example: Example) -> None:
    Snippet.objects.bulk_create(Snippet(name=name, text=text) for name, text in example.snippets.items())
    LookupTable.objects.bulk_create(LookupTable(name=name, data={}) for name in example.lookup_tables)


@pytest.mark.parametrize("example", all_examples(), ids=lambda example: example.name)
def test_a_saved_draft_names_the_snippets_and_tables_it_named_before(example: Example, users) -> None:
    store_library(example)
    mapping = actions.do_create_mapping(
        acting_user=users["author"],
        slug=example.name,
        title=example.title[:200],
        source_format=example.source_format,
        template=example.template,
    )
    snippets, tables = names_before(example)
    assert mapping.draft.snippet_names == snippets
    assert set(mapping.draft.table_names) == set(tables) | GAINED.get(example.name, set())
    assert mapping.draft.table_names == sorted(mapping.draft.table_names)


def test_a_draft_saved_while_it_does_not_parse_keeps_its_names(json_patient, users) -> None:
    draft = json_patient.draft
    broken = draft.template + "\n{% for x in %}"
    saved = actions.do_save_draft(
        json_patient, acting_user=users["author"], template=broken, expected_revision=draft.revision
    )
    assert (saved.snippet_names, saved.table_names) == (["snippets/common/datatypes.j2"], ["administrative-gender"])
    assert references(broken) == (saved.snippet_names, saved.table_names)


def test_dynamic_table_uses_names_each_place_in_the_template_and_its_snippets() -> None:
    example = next(example for example in all_examples() if example.name == "hl7v2-vxu-v04")
    store_library(example)
    snippets = snippet_closure(example.template)
    text = snippets["snippets/hl7v2/immunization.j2"]
    line = next(number for number, row in enumerate(text.splitlines(), 1) if "translate(table)" in row)
    assert dynamic_table_uses(example.template, snippets) == [f"snippets/hl7v2/immunization.j2:{line}"]
    root = '{% import "snippets/hl7v2/immunization.j2" as imm %}\n{{ x | translate_code(kind) }}'
    assert dynamic_table_uses(root, snippets) == ["template.j2:2", f"snippets/hl7v2/immunization.j2:{line}"]
    assert dynamic_table_uses('{{ x | translate("literal") }}{% for %}', snippets) == []
