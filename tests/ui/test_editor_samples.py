"""Samples and tests in the editor: delete a sample (asked first), an assertion that is not FHIRPath is refused at
its field, and the last recorded run is the one source of truth: shown after a reload as the mapping list shows it,
and "0 passed" is never a green badge."""

from __future__ import annotations

import pytest

from mappings import actions
from mappings.models import Mapping, SampleCase, TestRun

ADT = "/mappings/hl7v2-adt-a01/"
pytestmark = pytest.mark.timeout(180)


def test_it_deletes_a_sample_after_asking(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    page.click("#tests-tab-button")
    row = page.locator("#cases tr[data-case=adt-a01-full]")
    row.get_by_role("button", name="Delete sample adt-a01-full").click()
    ask = page.locator("#ask-dialog[open]")
    assert "Delete the sample adt-a01-full?" in ask.inner_text()
    page.click("#ask-no")
    assert row.count() == 1
    assert SampleCase.objects.filter(name="adt-a01-full").exists()

    row.get_by_role("button", name="Delete sample adt-a01-full").click()
    page.click("#ask-yes")
    row.wait_for(state="detached")
    assert not SampleCase.objects.filter(mapping__slug="hl7v2-adt-a01", name="adt-a01-full").exists()
    assert page.locator("#sample-select option[value=adt-a01-full]").count() == 0


def test_it_says_the_sample_name_rule_in_words(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    page.click("#tests-tab-button")
    page.click("#sample-new")
    page.fill("#sample-form input[name=name]", "Newborn A01")
    page.click("#sample-save")
    message = page.eval_on_selector("#sample-form input[name=name]", "input => input.validationMessage")
    assert message == "Lower-case letters, digits, - and _, starting with a letter or digit"
    assert page.locator("#sample-dialog[open]").count() == 1
    assert not SampleCase.objects.filter(name__iexact="newborn a01").exists()


def test_it_refuses_an_assertion_that_is_not_fhirpath_at_its_field(open_browser) -> None:
    browser = open_browser()
    browser.allow_console_error("status of 400")
    page = browser.page
    browser.open(ADT)
    page.click("#tests-tab-button")
    page.click("#sample-new")
    page.fill("#sample-form input[name=name]", "bad-assertion")
    page.fill("#sample-form textarea[name=assertions]", "Bundle.type = 'transaction'\nBundle.entry.where(")
    page.click("#sample-save")
    error = page.locator("#assertions-error")
    error.wait_for()
    assert "Assertion 2 ('Bundle.entry.where(') is not FHIRPath" in error.inner_text()
    assert page.get_attribute("#sample-form textarea[name=assertions]", "aria-invalid") == "true"
    assert page.locator("#sample-dialog[open]").count() == 1
    assert not SampleCase.objects.filter(name="bad-assertion").exists()
    browser.screenshot("editor-assertion-refused")


def test_it_shows_the_last_recorded_run_after_a_reload(open_browser, studio) -> None:
    mapping = Mapping.objects.get(slug="hl7v2-adt-a01")
    run = actions.do_run_tests(mapping, acting_user=studio["author"])
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    assert run.passed >= 1 and run.failed == 0
    badge = page.locator("#test-state")
    assert badge.inner_text() == f"tests: {run.passed} passed"
    assert "ok" in badge.get_attribute("class")
    page.click("#tests-tab-button")
    for name in mapping.samples.values_list("name", flat=True):
        assert page.inner_text(f"#cases tr[data-case={name}] .badge") == "passed"
    listed = page.evaluate("fetch('/api/mappings/hl7v2-adt-a01/').then((r) => r.json())")["last_test_run"]
    assert listed["id"] == run.id  # the run the mapping list shows
    assert f"{run.passed} passed, 0 failed" in page.inner_text("#run-summary")


def test_it_never_shows_zero_passed_as_green(open_browser, studio) -> None:
    mapping = actions.do_create_mapping(
        acting_user=studio["author"], slug="no-samples", title="No samples", source_format="json", template="{}"
    )
    actions.do_run_tests(mapping, acting_user=studio["author"])
    assert TestRun.objects.get(mapping=mapping).passed == 0
    browser = open_browser()
    page = browser.page
    browser.open("/mappings/no-samples/")
    badge = page.locator("#test-state")
    assert "ok" not in badge.get_attribute("class").split()
    assert "muted" in badge.get_attribute("class").split()
    assert badge.inner_text() == "tests: no samples ran"


def test_editing_a_sample_never_saves_another_sample_s_payload_into_it(open_browser) -> None:
    before = {sample.name: sample.payload for sample in SampleCase.objects.filter(mapping__slug="hl7v2-adt-a01")}
    first, other = sorted(before)[:2]  # the editor opens on the first; the analyst edits another one's assertions
    browser = open_browser()
    page = browser.page
    browser.open(ADT)
    assert page.input_value("#sample-select") == first
    page.click("#tests-tab-button")
    page.locator(f"#cases tr[data-case={other}]").get_by_role("button", name="Edit").click()
    assert page.input_value("#sample-select") == other  # the pane shows the payload that will be saved
    assertions = page.locator("#sample-form textarea[name=assertions]")
    assertions.press("Control+End")
    assertions.press_sequentially("\nBundle.type = 'transaction'")
    page.click("#sample-save")
    page.wait_for_function(
        f"document.querySelector('#cases tr[data-case={other}]').textContent.includes('transaction')"
    )
    saved = SampleCase.objects.get(mapping__slug="hl7v2-adt-a01", name=other)
    assert saved.payload == before[other]
    assert saved.assertions[-1] == "Bundle.type = 'transaction'"
