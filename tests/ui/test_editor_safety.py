"""The editor does not lose work by accident: loading a document is not an undoable change, saving an empty or
non-compiling template asks first, Ctrl/Cmd-S saves from anywhere on the page, and the bottom panel keeps the height
it was dragged to."""

from __future__ import annotations

import pytest

from mappings.models import Mapping

ADT = "/mappings/hl7v2-adt-a01/"
pytestmark = pytest.mark.timeout(180)


def draft() -> tuple[str, int]:
    found = Mapping.objects.select_related("draft").get(slug="hl7v2-adt-a01").draft
    return found.template, found.revision


def template_text(page) -> str:
    return page.evaluate("window.fhirStudio.templateText()")


def test_it_does_not_undo_the_loaded_template_or_sample(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    loaded, _ = draft()
    assert template_text(page) == loaded

    page.click(".template-pane .cm-content")
    for _ in range(3):
        page.keyboard.press("Control+z")
    assert template_text(page) == loaded
    assert page.inner_text("#save-state").startswith("saved")

    payload = page.locator("#payload-tab .cm-content")
    before = payload.inner_text()
    payload.click()
    page.keyboard.press("Control+z")
    assert payload.inner_text() == before
    assert "MSH|" in before

    # A real edit is still undoable, back to the loaded text and no further.
    page.keyboard.press("Control+End")
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("x")
    assert template_text(page) == loaded + "x"
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert template_text(page) == loaded


def test_it_does_not_undo_a_loaded_snippet_either(open_browser) -> None:
    """The snippet page loads its text through the same CodeMirror set-up (lib/codemirror.js setText)."""
    browser = open_browser()
    page = browser.page
    browser.open("/library/snippets/snippets/hl7v2/datatypes.j2")
    content = page.locator("#snippet-editor .cm-content")
    before = content.inner_text()
    assert "macro" in before
    content.click()
    page.keyboard.press("Control+z")
    assert content.inner_text() == before


def test_it_asks_before_saving_an_empty_template(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    loaded, revision = draft()
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.press("Control+s")
    ask = page.locator("#ask-dialog[open]")
    ask.wait_for()
    assert "Save an empty template?" in ask.inner_text()
    browser.screenshot("editor-ask-empty")
    page.keyboard.press("Enter")  # Cancel has the focus: Enter is a no
    ask.wait_for(state="detached")
    assert draft() == (loaded, revision)
    assert page.inner_text("#save-state") == "unsaved changes"

    page.click(".template-pane .cm-content")  # back in the template, the analyst saves again and means it
    page.keyboard.press("Control+s")
    ask.wait_for()
    page.click("#ask-yes")
    page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")
    assert draft() == ("", revision + 1)


def test_it_asks_before_saving_a_template_that_does_not_compile(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    loaded, revision = draft()
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.type("{% if %}")
    page.click("#save")
    ask = page.locator("#ask-dialog[open]")
    ask.wait_for()
    assert "does not compile" in ask.inner_text()
    assert "template.j2:1 FS-TPL-001" in ask.inner_text()
    page.click("#ask-no")
    assert draft() == (loaded, revision)


def test_it_saves_with_ctrl_s_wherever_the_focus_is(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT, ready="body[data-preview-seq]")
    _, revision = draft()
    targets = ["#run-tests", "#payload-tab .cm-content", "body"]
    for saved, target in enumerate(targets, start=revision + 1):
        page.click(".template-pane .cm-content")
        page.keyboard.press("Control+End")
        page.keyboard.type(" ")
        page.focus(target) if target != "body" else page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Control+s")
        page.wait_for_function(f"document.querySelector('#save-state').textContent === 'saved · revision {saved}'")
        assert draft()[1] == saved, target
    assert page.locator("dialog[open]").count() == 0


def test_it_keeps_the_bottom_panel_height_it_was_dragged_to(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    panel = page.locator(".bottom")
    before = panel.bounding_box()["height"]
    handle = page.locator("#bottom-resizer").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 100, steps=5)
    page.mouse.move(x, y - 150, steps=5)
    page.mouse.up()
    after = panel.bounding_box()["height"]
    assert abs(after - (before + 150)) <= 3, (before, after)
    assert page.locator(".template-pane").bounding_box()["height"] > 150  # the panes above keep room
    browser.screenshot("editor-bottom-resized")

    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert abs(panel.bounding_box()["height"] - after) <= 3

    page.focus("#bottom-resizer")
    page.keyboard.press("ArrowDown")
    assert abs(panel.bounding_box()["height"] - (after - 24)) <= 3
    assert page.get_attribute("#bottom-resizer", "aria-valuenow") == str(round(panel.bounding_box()["height"]))
