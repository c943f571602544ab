"""Snippet and lookup-table pages in Chromium: edit and save a revision, read the history, import CSV, and a delete
that drafts still depend on is refused with the reason."""

from __future__ import annotations

import pytest

from mappings.models import LookupTable, Snippet

pytestmark = pytest.mark.timeout(120)
SNIPPET = "snippets/common/datatypes.j2"


def test_it_lists_snippets_and_saves_an_edited_one_as_a_new_revision(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/library/snippets/")
    page.wait_for_selector(f"#items tr[data-name='{SNIPPET}']")
    page.fill("#filters input[name=search]", "hl7v2")
    page.wait_for_function("!document.querySelector(\"#items tr[data-name='snippets/common/datatypes.j2']\")")
    assert page.locator("#items tbody tr").count() >= 3
    browser.screenshot("snippet-list")

    browser.open(f"/library/snippets/{SNIPPET}#L3")
    assert page.evaluate("document.querySelector('.cm-activeLine') !== null")
    page.click("#snippet-editor .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.type("{# edited in the browser #}\n")
    assert page.inner_text("#save-state") == "unsaved changes"
    page.keyboard.press("Control+s")
    page.wait_for_selector("#save-state:has-text('revision 2')")
    snippet = Snippet.objects.get(name=SNIPPET)
    assert snippet.revision == 2 and snippet.text.startswith("{# edited in the browser #}")

    page.click("#history li[data-revision='1'] button")
    page.wait_for_selector("#revision-view:not([hidden]) .cm-mergeView")
    assert "edited in the browser" in page.inner_text("#revision-diff .cm-merge-b")
    assert "edited in the browser" not in page.inner_text("#revision-diff .cm-merge-a")
    browser.screenshot("snippet-history")


def test_it_refuses_to_delete_a_snippet_that_drafts_import(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(f"/library/snippets/{SNIPPET}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_selector("#banner:not([hidden])")
    assert "Not deleted" in page.inner_text("#banner")
    browser.allow_console_error("status of 409")
    assert Snippet.objects.filter(name=SNIPPET).exists()


def test_it_edits_a_lookup_table_as_rows_and_imports_csv(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/library/lookup-tables/administrative-gender")
    rows = page.locator("#rows tbody tr")
    before = rows.count()
    page.click("#add-row")
    last = rows.nth(before)
    last.locator("input[data-key=source]").fill("X")
    last.locator("input[data-key=code]").fill("other")
    last.locator("input[data-key=display]").fill("Other")
    page.click("#save")
    page.wait_for_selector("#save-state:has-text('revision 2')")
    entries = LookupTable.objects.get(name="administrative-gender").data["entries"]
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
    imported = LookupTable.objects.get(name="administrative-gender").data["entries"]
    assert [row["source"].upper() for row in imported] == [  # stored folded: the table is case-insensitive
        "M",
        "F",
        "Q",
    ]
    page.click("#json-tab-button")
    assert '"code": "unknown"' in page.inner_text("#json-tab")
    browser.screenshot("lookup-table-import")


def test_it_shows_a_bad_csv_import_without_changing_the_table(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/library/lookup-tables/administrative-gender")
    page.click("#import-tab-button")
    page.fill("#import-form textarea[name=content]", "only-one-column\n")
    page.click("#import")
    browser.allow_console_error("status of 400")
    page.wait_for_function("document.querySelector('#import-result').textContent.length > 0")
    assert "Imported" not in page.inner_text("#import-result")
    assert LookupTable.objects.get(name="administrative-gender").revision == 1
