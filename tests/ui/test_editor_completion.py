"""Completion lists the studio's FHIR helpers first; Jinja's generic built-ins follow, under their own heading and
marked "Jinja built-in"."""

from __future__ import annotations

import pytest

ADT = "/mappings/hl7v2-adt-a01/"
pytestmark = pytest.mark.timeout(120)


def test_it_lists_fhir_helpers_before_jinjas_generic_filters(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type('\n{{ "1990-01-02" | ')
    page.keyboard.press("Control+Space")
    popup = page.locator(".cm-tooltip-autocomplete")
    popup.wait_for()
    entries = popup.evaluate(
        """(popup) => [...popup.querySelectorAll("completion-section, li")].map((node) =>
             node.tagName === "LI" ? ["option", node.querySelector(".cm-completionLabel").textContent,
                                      node.querySelector(".cm-completionDetail")?.textContent || ""]
                                   : ["section", node.textContent, ""])"""
    )
    sections = [name for kind, name, _ in entries if kind == "section"]
    assert sections == ["FHIR helpers", "Jinja built-in"]
    split = entries.index(["section", "Jinja built-in", ""])
    studio = [name for kind, name, _ in entries[:split] if kind == "option"]
    jinja = {name: detail for kind, name, detail in entries[split:] if kind == "option"}
    assert entries[1][1] == studio[0]
    assert {"fhir_date", "translate_code", "urn_uuid"} <= set(studio)
    assert not {"center", "filesizeformat", "tojson"} & set(studio)
    assert jinja["filesizeformat"].endswith("Jinja built-in")
    browser.screenshot("editor-completion-filters")
