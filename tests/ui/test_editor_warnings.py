"""A column the pasted CSV does not have (the starter's `row["birth date"]` over a file whose header says
`birth_date`) is a warning at the template line, in Problems and underlined in the template, instead of an empty
value and "valid"."""

from __future__ import annotations

import pytest

from tests.ui.test_editor_page import preview_seq, wait_for_preview_after

pytestmark = pytest.mark.timeout(180)

CLINIC_CSV = (
    "mrn,family,given,sex,birth_date,street,city,zip\n2001,Hopper,Grace,F,1906-12-09,1 Navy Way,Arlington,22201\n"
)


def test_it_warns_at_the_template_line_about_a_column_the_csv_does_not_have(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/")
    page.click("#new-mapping-open")
    page.locator("#new-mapping input[name=title]").press_sequentially("Clinic file")
    page.select_option("#new-source-format", "csv")
    page.click("#new-mapping button[type=submit]")
    page.wait_for_url("**/mappings/clinic-file/")
    page.wait_for_selector("body[data-preview-seq]", state="attached")
    assert page.locator("#problems .problem[data-code='FS-RND-007']").count() == 0  # the starter's sample has it

    seq = preview_seq(page)
    page.click("#payload-tab .cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(CLINIC_CSV)
    wait_for_preview_after(page, seq)

    problem = page.locator("#problems .problem.warning[data-code='FS-RND-007']")
    problem.wait_for()
    text = problem.inner_text()
    assert "no column 'birth date'; did you mean 'birth_date'?" in text, text
    line = page.evaluate(
        """() => window.fhirStudio.templateText().split("\\n")
             .findIndex((text) => text.includes('"birthDate": {{ row["birth date"]')) + 1"""
    )
    assert f"template.j2:{line}" in text
    assert "valid FHIR" not in page.inner_text("#problems")
    warned = page.locator(".template-pane .cm-line", has=page.locator(".cm-lintRange-warning")).first
    warned.wait_for()
    assert 'row["birth date"]' in warned.inner_text()
    assert "birthDate" not in page.evaluate("window.fhirStudio.lastResult.output")["entry"][0]["resource"]
    browser.screenshot("editor-missing-column-warning")

    page.click(".output-pane .cm-content")
    problem.locator("button").click()  # the problem takes the cursor to the line
    active = page.evaluate("document.querySelector('.template-pane .cm-activeLine')?.textContent")
    assert 'row["birth date"]' in active
