"""The editor's recovery paths in Chromium: changes kept in the browser can be discarded, a save conflict can be
settled by taking the other author's text, a message left for the next page load is shown, and the bottom panel is
resized from the keyboard and keeps its height."""

from __future__ import annotations

import pytest

from tests.ui.conftest import make_user
from tests.ui.test_editor_page import ADT, draft_text, replace_all

pytestmark = pytest.mark.timeout(180)
DRAFT_KEY = "fhirstudio:draft:hl7v2-adt-a01"


def saved(page) -> None:
    page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")


def test_kept_changes_can_be_discarded_and_a_conflict_settled_by_taking_theirs(open_browser, studio) -> None:
    make_user("bob", "author")
    ana = open_browser("ana")
    page = ana.page
    ana.open(ADT, ready="body[data-preview-seq]")
    replace_all(page, '"type": "transaction"', '"type": "batch"')
    page.wait_for_function(f"localStorage.getItem('{DRAFT_KEY}') !== null")
    page.evaluate("sessionStorage.setItem('fhirstudio:flash', 'a message for the next page')")
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert "a message for the next page" in page.inner_text("#toast")
    page.get_by_role("button", name="Discard them").click()
    assert page.locator("#banner").is_hidden()
    assert '"type": "transaction"' in page.evaluate("fhirStudio.templateText()")
    assert page.evaluate(f"localStorage.getItem('{DRAFT_KEY}')") is None
    saved(page)

    bob = open_browser("bob")
    bob.open(ADT, ready="body[data-preview-seq]")
    replace_all(bob.page, '"type": "transaction"', '"type": "batch"')
    bob.page.keyboard.press("Control+s")
    saved(bob.page)

    ana.allow_console_error("status of 412")
    replace_all(page, '"resourceType": "Bundle",', '"resourceType": "Bundle", "id": "ana",')
    page.keyboard.press("Control+s")
    page.locator("#conflict-dialog").wait_for()
    page.click("#conflict-take-theirs")
    saved(page)
    text = page.evaluate("fhirStudio.templateText()")
    assert '"type": "batch"' in text and '"id": "ana"' not in text
    assert '"type": "batch"' in draft_text()


def test_the_bottom_panel_grows_from_the_keyboard_and_keeps_its_height(open_browser, studio) -> None:
    ana = open_browser("ana")
    page = ana.page
    ana.open(ADT, ready="body[data-preview-seq]")
    height = "Math.round(document.querySelector('.bottom').getBoundingClientRect().height)"
    before = page.evaluate(height)
    page.focus("#bottom-resizer")
    page.keyboard.press("ArrowUp")
    assert page.evaluate(height) == before + 24
    assert page.evaluate("localStorage.getItem('fhirstudio:editor:bottom-height')") == str(before + 24)
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.evaluate(height) == before + 24
    assert page.get_attribute("#bottom-resizer", "aria-valuenow") == str(before + 24)
