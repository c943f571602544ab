"""When the rendered output is not JSON (FS-PST-001) the output pane shows what the template wrote, with the spot
where parsing stopped marked and scrolled into view, instead of going blank."""

from __future__ import annotations

import pytest

from tests.ui.test_editor_page import preview_seq, replace_all, wait_for_preview_after

ADT = "/mappings/hl7v2-adt-a01/"
pytestmark = pytest.mark.timeout(180)


def test_it_shows_the_output_that_is_not_json_with_the_error_marked(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    seq = preview_seq(page)
    replace_all(page, '"type": "transaction",', '"type": "transaction" "oops": 1,')
    wait_for_preview_after(page, seq)

    note = page.locator("#output-note")
    note.wait_for()
    assert "not JSON" in note.inner_text() and "line 3" in note.inner_text()
    marked = page.locator(".output-pane .cm-line", has=page.locator(".cm-lintRange-error")).first
    marked.wait_for()
    assert '"type": "transaction" "oops": 1,' in marked.inner_text()
    assert '"resourceType": "Bundle"' in page.inner_text(".output-pane .cm-content")  # the raw text, not a blank pane
    problem = page.locator("#problems .problem.error").first
    assert "FS-PST-001" in problem.inner_text()
    browser.screenshot("editor-output-not-json")
    page.click("#outcome-tab-button")  # built when first shown
    assert '"FS-PST-001"' in page.inner_text("#outcome-tab .cm-content")
    page.click("#output-tab-button")

    seq = preview_seq(page)
    replace_all(page, '"type": "transaction" "oops": 1,', '"type": "transaction",')
    wait_for_preview_after(page, seq)
    assert note.is_hidden()
    assert page.locator(".output-pane .cm-lintRange-error").count() == 0
