"""The editor renders unsaved text on every keystroke. Most keystrokes change only the literal text a template writes,
so a preview reuses what an earlier text with the same code (tags and expressions) imports and which tables it names
instead of parsing the text again (mappings.compiling.root_references). These tests type as an analyst would and
check that each preview still answers for its own text."""

import pytest

from mappings import actions, caches
from mappings.engine import reuse_compiled
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

URL = "/api/mappings/json-patient/render"
PAYLOAD = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()


def render(client, template: str) -> dict:
    response = client.post(URL, {"payload": PAYLOAD, "template": template, "validate": False}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def basic(middle: str, head: str = "") -> str:
    return head + '{"resourceType": "Basic", "id": ' + middle + "}"


@pytest.fixture
def two_snippets(users) -> None:
    for letter in "ab":
        actions.do_create_snippet(
            acting_user=users["author"],
            name=f"snippets/common/{letter}.j2",
            text=f'{{%- macro word() -%}}"from-{letter}"{{%- endmacro -%}}',
        )


@pytest.fixture
def two_tables(users) -> None:
    for name, code in (("colour-one", "red"), ("colour-two", "blue")):
        actions.do_create_lookup_table(
            acting_user=users["author"],
            name=name,
            data={"entries": [{"source": "X", "code": code}], "default": None},
        )


def test_it_renders_each_keystroke_in_literal_text_with_its_own_text(api, json_patient, two_snippets) -> None:
    head = '{%- import "snippets/common/a.j2" as s -%}'
    typed = ""
    for letter in "xyz":
        typed += letter
        result = render(api["viewer"], basic('{{ s.word() }}, "text": {"div": "' + typed + '"}', head))
        assert (result["ok"], result["output"]["id"], result["output"]["text"]["div"]) == (True, "from-a", typed)
    assert len(caches.root_references.items) == 1  # three texts, one reading of their references


def test_it_imports_the_snippet_a_changed_name_points_to(api, json_patient, two_snippets) -> None:
    # Only a string inside a tag differs: the code tokens differ, so the references are read again.
    for letter in "ab":
        head = f'{{%- import "snippets/common/{letter}.j2" as s -%}}'
        result = render(api["viewer"], basic("{{ s.word() }}", head))
        assert (result["ok"], result["output"]["id"]) == (True, f"from-{letter}")


def test_it_reads_the_table_a_changed_name_points_to(api, json_patient, two_tables) -> None:
    for table, code in (("colour-one", "red"), ("colour-two", "blue")):
        result = render(api["viewer"], basic(f'{{{{ ("X" | translate("{table}")).code | tojson }}}}'))
        assert (result["ok"], result["output"]["id"]) == (True, code), result["errors"]


def test_it_reports_a_text_jinja_cannot_read_at_its_line(api, json_patient) -> None:
    result = render(api["viewer"], basic('"ok"') + '\n{{ "unclosed')
    assert result["ok"] is False
    assert [(error["code"], error["line"]) for error in result["errors"]] == [("FS-TPL-001", 2)]


def test_keys_in_literal_text_reuse_the_compiled_code_of_the_first_text(api, json_patient, two_snippets) -> None:
    head = '{%- import "snippets/common/a.j2" as s -%}'
    typed = ""
    for letter in "xyz":
        typed += letter
        result = render(api["viewer"], basic('{{ s.word() }}, "text": {"div": "' + typed + '"}', head))
        assert (result["output"]["id"], result["output"]["text"]["div"]) == ("from-a", typed)
    assert reuse_compiled.SKELETONS.compiles == 1  # three texts of one shape: compiled once, as a skeleton
    # A key inside an expression is a new shape: compiled again, and its output follows.
    result = render(api["viewer"], basic('{{ (s.word()) }}, "text": {"div": "' + typed + '"}', head))
    assert (result["output"]["id"], reuse_compiled.SKELETONS.compiles) == ("from-a", 2)
    # A key that breaks a tag: the error and its line, as always; the shape that compiled is still reused after it.
    result = render(api["viewer"], basic('{{ s.word( }}, "text": {"div": "' + typed + '"}', "\n" + head))
    assert [(error["code"], error["line"]) for error in result["errors"]] == [("FS-TPL-001", 2)]
    result = render(api["viewer"], basic('{{ s.word() }}, "text": {"div": "' + typed + '!"}', head))
    assert (result["output"]["text"]["div"], reuse_compiled.SKELETONS.compiles) == (typed + "!", 2)


def test_the_locating_render_of_a_text_does_not_lex_it_again(api, json_patient) -> None:
    text = basic('"x", "text": {"div": "typed"}')
    plain = render(api["viewer"], text)
    response = api["viewer"].post(URL, {"payload": PAYLOAD, "template": text, "locate": True}, format="json")
    assert response.json()["output"] == plain["output"]
    assert list(reuse_compiled.RECENT.items) == [text]  # the second render found the text's tokens: one entry
    assert [kind for _, kind, _ in reuse_compiled.RECENT.items[text]] == ["data"]  # literal text only
