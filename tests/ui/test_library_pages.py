"""Snippet and lookup-table pages in Chromium: edit and save a revision, compare it with an older one, keep typed text
through a conflict, import CSV and a ConceptMap, and a delete that drafts still depend on is refused with the reason.
Every write names the revision the page read (If-Match): a delete or an import over someone else's newer revision
asks first."""

from __future__ import annotations

import json

import pytest

from mappings.actions import do_create_snippet, do_update_lookup_table, do_update_snippet
from mappings.models import LookupTable, Snippet

pytestmark = pytest.mark.timeout(120)
SNIPPET = "snippets/common/datatypes.j2"
USED_SNIPPET = "snippets/hl7v2/datatypes.j2"  # imported by the demo's HL7 v2 drafts
TABLE = "administrative-gender"


def test_it_lists_snippets_and_saves_an_edited_one_as_a_new_revision(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/library/snippets/")
    page.wait_for_selector(f"#items tr[data-name='{SNIPPET}']")
    page.fill("#filters input[name=search]", "hl7v2")
    page.wait_for_function(f"!document.querySelector(\"#items tr[data-name='{SNIPPET}']\")")
    assert page.locator("#items tbody tr").count() >= 3
    browser.screenshot("snippet-list")

    page.fill("#filters input[name=search]", "")
    page.click(f"#items a[href='/library/snippets/{SNIPPET}']")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.click("#snippet-editor .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.type("{# edited in the browser #}\n")
    assert page.inner_text("#save-state") == "unsaved changes"
    page.keyboard.press("Control+s")
    page.wait_for_selector("#save-state:has-text('revision 2')")
    snippet = Snippet.objects.get(name=SNIPPET)
    assert snippet.revision == 2 and snippet.text.startswith("{# edited in the browser #}")
    assert list(snippet.versions.order_by("revision").values_list("revision", flat=True)) == [1, 2]

    page.click("#history li[data-revision='1'] button")
    page.wait_for_selector("#revision-dialog[open] #revision-diff .cm-mergeView")
    assert "edited in the browser" in page.inner_text("#revision-diff .cm-merge-b")
    assert "edited in the browser" not in page.inner_text("#revision-diff .cm-merge-a")
    browser.screenshot("snippet-history-diff")
    page.click("#revision-text-tab-button")
    assert "edited in the browser" not in page.inner_text("#revision-text-tab")
    page.keyboard.press("Escape")
    page.wait_for_selector("#revision-dialog:not([open])", state="attached")


def test_it_selects_the_line_named_in_the_address(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{USED_SNIPPET}#L12")
    lines = Snippet.objects.get(name=USED_SNIPPET).text.split("\n")
    assert page.evaluate("window.getSelection().toString()") == lines[11]
    assert page.locator(".cm-lineNumbers .cm-activeLineGutter").inner_text() == "12"


def test_it_keeps_typed_text_when_someone_else_saved_meanwhile(open_browser, studio) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{SNIPPET}")
    page.click("#snippet-editor .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.type("{# mine #}\n")
    snippet = Snippet.objects.get(name=SNIPPET)
    do_update_snippet(snippet, acting_user=studio["author"], text="{# theirs #}\n" + snippet.text)

    page.click("#save")
    browser.allow_console_error("status of 412")
    dialog = page.wait_for_selector("#conflict-dialog[open]")
    assert "revision 2" in dialog.inner_text()
    assert "{# theirs #}" in page.inner_text("#conflict-merge .cm-merge-a")
    assert "{# mine #}" in page.inner_text("#conflict-merge .cm-merge-b")
    browser.screenshot("snippet-conflict")
    page.click("#conflict-cancel")
    assert Snippet.objects.get(name=SNIPPET).text.startswith("{# theirs #}")

    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert "restored from this browser" in page.inner_text("#banner")
    assert page.inner_text("#snippet-editor .cm-line >> nth=0") == "{# mine #}"


def test_it_refuses_to_delete_a_snippet_that_drafts_import(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{USED_SNIPPET}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    browser.allow_console_error("status of 409")
    page.wait_for_selector("#banner:not([hidden])")
    assert "Not deleted" in page.inner_text("#banner")
    assert page.locator("#banner a[href='/mappings/hl7v2-oru-r01/']").count() == 1
    browser.screenshot("snippet-delete-in-use")
    assert Snippet.objects.filter(name=USED_SNIPPET).exists()


def test_it_edits_a_lookup_table_as_rows_and_imports_csv(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/lookup-tables/{TABLE}")
    rows = page.locator("#rows tbody tr")
    before = rows.count()
    page.click("#add-row")
    last = rows.nth(before)
    last.locator("input[data-key=source]").fill("X")
    last.locator("input[data-key=code]").fill("other")
    last.locator("input[data-key=display]").fill("Other")
    page.click("#save")
    page.wait_for_selector("#save-state:has-text('revision 2')")
    entries = LookupTable.objects.get(name=TABLE).data["entries"]
    assert {"source": "X", "code": "other", "display": "Other"} in entries
    browser.screenshot("lookup-table")

    page.click("#import-tab-button")
    page.fill(
        "#import-form textarea[name=content]",
        "source_code,target_code,target_display\nM,male,Male\nF,female,Female\nQ,unknown,Unknown\n",
    )
    page.click("#import")
    page.wait_for_function("document.querySelector('#import-result').textContent.startsWith('Imported 3 rows')")
    assert rows.count() == 3
    assert [rows.nth(index).locator("input[data-key=code]").input_value() for index in range(3)] == [
        "male",
        "female",
        "unknown",
    ]
    table = LookupTable.objects.get(name=TABLE)
    assert table.revision == 3
    # stored folded, as the engine keys them: the table is not case-sensitive
    assert [row["source"].upper() for row in table.data["entries"]] == ["M", "F", "Q"]
    assert table.data["target_system"] == "http://hl7.org/fhir/administrative-gender"  # the form offered the table's
    page.click("#json-tab-button")  # CodeMirror loads on demand: a table's page does not need it to be usable
    page.wait_for_selector("#json-tab .cm-content")
    assert '"code": "unknown"' in page.inner_text("#json-tab")
    browser.screenshot("lookup-table-import")


def test_it_imports_a_concept_map(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/lookup-tables/{TABLE}")
    concept_map = {
        "resourceType": "ConceptMap",
        "status": "active",
        "group": [
            {
                "source": "http://terminology.hl7.org/CodeSystem/v2-0001",
                "target": "http://hl7.org/fhir/administrative-gender",
                "element": [
                    {"code": "M", "target": [{"code": "male", "display": "Male", "equivalence": "equivalent"}]},
                    {"code": "F", "target": [{"code": "female", "display": "Female", "equivalence": "equivalent"}]},
                ],
            }
        ],
    }
    page.click("#import-tab-button")
    page.select_option("#import-form select[name=format]", "conceptmap")
    page.fill("#import-form textarea[name=content]", json.dumps(concept_map))
    page.click("#import")
    page.wait_for_function("document.querySelector('#import-result').textContent.startsWith('Imported 2 rows')")
    assert page.locator("#rows tbody tr").count() == 2
    entries = LookupTable.objects.get(name=TABLE).data["entries"]
    assert {entry["source_system"] for entry in entries} == {"http://terminology.hl7.org/CodeSystem/v2-0001"}


def test_it_shows_a_bad_csv_import_without_changing_the_table(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/lookup-tables/{TABLE}")
    page.click("#import-tab-button")
    page.fill("#import-form textarea[name=content]", "only-one-column\n")
    page.click("#import")
    browser.allow_console_error("status of 400")
    page.wait_for_selector("#import-result.error")
    assert page.inner_text("#import-result").startswith("Not imported")
    assert "source_code and target_code" in page.inner_text("#import-result")
    assert "[object Object]" not in page.inner_text("#import-result")
    browser.screenshot("lookup-table-import-error")
    assert LookupTable.objects.get(name=TABLE).revision == 1


def test_it_points_at_the_row_the_api_refused_and_keeps_it(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/lookup-tables/{TABLE}")
    rows = page.locator("#rows tbody tr")
    before = rows.count()
    page.click("#add-row")
    rows.nth(before).locator("input[data-key=code]").fill("other")  # a target without a source code
    page.click("#save")
    browser.allow_console_error("status of 400")
    page.wait_for_selector(f"#rows tbody tr:nth-child({before + 1})[aria-invalid=true]")
    assert f"row {before + 1}: source must be a non-empty code" in page.inner_text("#banner")
    assert rows.count() == before + 1
    assert LookupTable.objects.get(name=TABLE).revision == 1


class Dialogs:
    """Answers every confirm() the page asks as `accept` says, and keeps their messages in order."""

    def __init__(self, page, *, accept: bool) -> None:
        self.accept = accept
        self.asked: list[str] = []
        page.on("dialog", self.answer)

    def answer(self, dialog) -> None:
        self.asked.append(dialog.message)
        if self.accept:
            dialog.accept()
        else:
            dialog.dismiss()


def test_it_asks_before_deleting_a_revision_someone_saved_meanwhile(open_browser, studio) -> None:
    spare = do_create_snippet(acting_user=studio["author"], name="snippets/json/spare.j2", text="{# spare #}\n")
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{spare.name}")
    do_update_snippet(spare, acting_user=studio["viewer"], text="{# theirs #}\n")
    asked = Dialogs(page, accept=True).asked
    page.click("#delete")
    browser.allow_console_error("status of 412")
    page.wait_for_url("**/library/snippets/")
    assert asked[0].startswith(f"Delete {spare.name}?")
    assert "vic saved revision 2" in asked[1] and asked[1].endswith("anyway?")
    assert not Snippet.objects.filter(name=spare.name).exists()


def test_it_asks_before_importing_over_a_revision_someone_saved_meanwhile(open_browser, studio) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/lookup-tables/{TABLE}")
    table = LookupTable.objects.get(name=TABLE)
    do_update_lookup_table(table, acting_user=studio["viewer"], data={"entries": {"M": "male"}})
    page.click("#import-tab-button")
    page.fill("#import-form textarea[name=content]", "source_code,target_code\nM,male\nF,female\n")
    dialogs = Dialogs(page, accept=False)
    page.click("#import")
    browser.allow_console_error("status of 412")
    page.wait_for_selector("#import-result.error")
    assert "vic saved revision 2" in dialogs.asked[0]
    assert "changed since this page loaded" in page.inner_text("#import-result")
    assert LookupTable.objects.get(name=TABLE).data == {"entries": {"M": "male"}}

    dialogs.accept = True
    page.click("#import")
    page.wait_for_function("document.querySelector('#import-result').textContent.startsWith('Imported 2 rows')")
    assert LookupTable.objects.get(name=TABLE).revision == 3


def test_it_pages_and_searches_lookup_tables_in_the_address(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/library/lookup-tables/")
    rows = page.locator("#items tbody tr[data-name]")
    assert rows.count() == 25
    assert page.inner_text("#pages-place") == "1–25 of 50"
    assert page.locator("#pages-previous").is_disabled()
    first_page = rows.first.get_attribute("data-name")

    page.click("#pages-next")
    page.wait_for_url("**/library/lookup-tables/?page=2")
    page.wait_for_function("document.querySelector('#pages-place').textContent === '26–50 of 50'")
    assert rows.count() == 25 and rows.first.get_attribute("data-name") != first_page
    assert page.locator("#pages-next").is_disabled()
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#pages-place") == "26–50 of 50"

    page.fill("#filters input[name=search]", "gender")
    page.wait_for_url("**/library/lookup-tables/?search=gender")  # a new search starts on its first page
    page.wait_for_selector(f"#items tr[data-name='{TABLE}']")
    assert page.locator("#pages-pager").is_hidden()
    page.click(f"#items a[href='/library/lookup-tables/{TABLE}']")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.go_back()
    page.wait_for_url("**/library/lookup-tables/?search=gender")
    page.wait_for_selector(f"#items tr[data-name='{TABLE}']")
    assert page.input_value("#filters input[name=search]") == "gender"

    browser.open("/library/lookup-tables/?page=9")  # past the end (a stale link): the first page instead
    page.wait_for_url("**/library/lookup-tables/")
    page.wait_for_function("document.querySelector('#pages-place').textContent === '1–25 of 50'")
    browser.allow_console_error("status of 404")
    browser.screenshot("lookup-table-list-pages")


@pytest.mark.parametrize(
    ("kind", "bad", "rule", "good"),
    [
        ("snippets", "snippets/HL7/Types.j2", "snippets/<source>/<role>.j2", "snippets/csv/ids.j2"),
        ("lookup-tables", "My Table", "Lower-case letters, digits, - and _", "my-table"),
    ],
)
def test_it_says_the_name_rule_of_a_new_item(open_browser, kind, bad, rule, good) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/{kind}/")
    page.click("#new-open")
    name = page.locator("#new-form input[name=name]")
    assert name.get_attribute("title").startswith(rule)
    assert page.locator("#name-hint").is_visible()
    name.fill(bad)
    page.click("#new-form button[type=submit]")
    assert name.evaluate("(input) => input.validationMessage").startswith(rule)
    name.fill(good)
    assert name.evaluate("(input) => input.validationMessage") == ""
    page.click("#new-form button[type=submit]")
    page.wait_for_url(f"**/library/{kind}/{good}")


def test_it_shows_which_mappings_use_a_snippet_and_a_table(open_browser, studio) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{USED_SNIPPET}")
    use = page.locator("#used-by li[data-slug=hl7v2-oru-r01]")
    assert use.locator("a[href='/mappings/hl7v2-oru-r01/']").count() == 1
    assert "draft" in use.inner_text() and "frozen in v1" in use.inner_text()
    assert use.locator("a[href='/mappings/hl7v2-oru-r01/history']").inner_text() == "v1"
    assert page.locator("#used-by li[data-slug]").count() == int(page.inner_text("#used-by-count"))
    browser.screenshot("snippet-used-by")

    browser.open(f"/library/lookup-tables/{TABLE}")
    assert page.locator("#used-by li[data-slug]").count() >= 1
    spare = do_create_snippet(acting_user=studio["author"], name="snippets/json/unused.j2", text="{# unused #}\n")
    browser.open(f"/library/snippets/{spare.name}")
    assert page.inner_text("#used-by") == "No mapping imports it."
