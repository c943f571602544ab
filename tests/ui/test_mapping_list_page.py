"""The mapping list in Chromium: filters narrow the list, pages go 50 rows at a time (the page kept in the address
with the filters), and a new mapping starts from its format's starter and opens in the editor with a working
preview."""

from __future__ import annotations

import pytest

from mappings.models import Mapping

pytestmark = pytest.mark.timeout(120)


def test_it_filters_the_list_by_source_format_and_search(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/")
    page.wait_for_selector("#mapping-table tr[data-slug=ccda-ccd]")
    assert page.locator("#mapping-table tbody tr").count() == 6
    page.select_option("#filters select[name=source_format]", "hl7v2")
    page.wait_for_function("document.querySelectorAll('#mapping-table tbody tr').length === 3")
    page.fill("#filters input[name=search]", "ORU")
    page.wait_for_function("document.querySelectorAll('#mapping-table tbody tr').length === 1")
    assert page.locator("#mapping-table tbody tr").get_attribute("data-slug") == "hl7v2-oru-r01"
    browser.screenshot("mapping-list-filtered")


def test_it_creates_a_mapping_from_a_starter_and_opens_it(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/")
    page.click("#new-mapping-open")
    page.fill("#new-mapping input[name=slug]", "lab-feed")
    page.fill("#new-mapping input[name=title]", "Lab feed")
    page.select_option("#new-source-format", "hl7v2")
    page.click("#new-mapping button[type=submit]")
    page.wait_for_url("**/mappings/lab-feed/")
    page.wait_for_selector("body[data-preview-seq]", state="attached")
    assert '"family": "Lovelace"' in page.inner_text(".output-pane .cm-content")
    assert page.locator("#problems .problem").count() == 0
    assert Mapping.objects.get(slug="lab-feed").samples.get().name == "starter"

    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.click("#tree-tab-button")
    pid = page.locator("#source-tree li[data-expression='msg.PID']")
    pid.locator("> details > summary > .node-label").click()  # unfold the segment
    pid.locator("li[data-expression='msg.PID[7]'] > button.insert").click()
    assert "{{ msg.PID[7] }}" in page.inner_text(".template-pane .cm-content")
    assert pid.get_attribute("aria-expanded") == "true"
    browser.screenshot("editor-source-tree")


def test_it_completes_hl7_fields_with_their_names(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/mappings/hl7v2-adt-a01/", ready="body[data-preview-seq]")
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.type("{{ msg.PID[")
    option = page.locator(".cm-tooltip-autocomplete li", has_text="PID-5 Patient Name")
    option.wait_for()
    page.keyboard.press("Escape")
    page.keyboard.type("5][")
    page.locator(".cm-tooltip-autocomplete li", has_text="Family Name").wait_for()
    browser.screenshot("editor-completion")


def test_it_keeps_search_and_filters_in_the_address(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/")
    page.select_option("#filters select[name=source_format]", "hl7v2")
    page.fill("#filters input[name=search]", "ORU")
    page.wait_for_function("document.querySelectorAll('#mapping-table tbody tr').length === 1")
    page.wait_for_url("**/?search=ORU&source_format=hl7v2")

    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.input_value("#filters input[name=search]") == "ORU"
    assert page.input_value("#filters select[name=source_format]") == "hl7v2"
    assert page.locator("#mapping-table tbody tr").get_attribute("data-slug") == "hl7v2-oru-r01"

    page.click("#mapping-table tr[data-slug=hl7v2-oru-r01] a")
    page.wait_for_url("**/mappings/hl7v2-oru-r01/")
    page.go_back()
    page.wait_for_url("**/?search=ORU&source_format=hl7v2")
    page.wait_for_function("document.querySelectorAll('#mapping-table tbody tr[data-slug]').length === 1")
    assert page.input_value("#filters input[name=search]") == "ORU"

    # a link someone sent: the list it names, filters set; one the API would refuse lists without that filter
    browser.open("/?status=published&last_test=passed&source_format=xml")
    assert page.input_value("#filters select[name=status]") == "published"
    assert page.input_value("#filters select[name=last_test]") == "passed"
    assert [row.get_attribute("data-slug") for row in page.locator("#mapping-table tbody tr").all()] == ["ccda-ccd"]
    browser.open("/?source_format=cobol")
    assert page.locator("#mapping-table tbody tr[data-slug]").count() == 6
    page.select_option("#filters select[name=status]", "published")
    page.wait_for_url("**/?status=published")
    browser.screenshot("mapping-list-filters-in-address")


SLUG_RULE = "Lower-case letters, digits and hyphens (-), starting with a letter or digit, e.g. lab-adt-feed"


def test_it_makes_the_slug_from_the_title_and_says_the_slug_rule(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/")
    page.click("#new-mapping-open")
    slug = page.locator("#new-mapping input[name=slug]")
    assert slug.get_attribute("title") == SLUG_RULE
    assert page.locator("#slug-hint").is_visible()
    assert "Lower-case letters, digits and hyphens" in page.inner_text("#slug-hint")

    page.locator("#new-mapping input[name=title]").press_sequentially("Lab feed: ADT^A01 (Müller)")
    assert slug.input_value() == "lab-feed-adt-a01-muller"

    slug.fill("Lab Feed")  # the user takes the slug over: the title no longer changes it
    page.locator("#new-mapping input[name=title]").press_sequentially(" v2")
    assert slug.input_value() == "Lab Feed"
    page.click("#new-mapping button[type=submit]")
    assert slug.evaluate("(input) => input.validationMessage") == SLUG_RULE
    assert slug.evaluate("(input) => input.matches(':invalid')")
    assert not Mapping.objects.filter(title__startswith="Lab feed").exists()
    browser.screenshot("new-mapping-slug-rule")

    slug.fill("")  # emptied: it follows the title again
    page.locator("#new-mapping input[name=title]").fill("")
    page.locator("#new-mapping input[name=title]").press_sequentially("Lab feed")
    assert slug.input_value() == "lab-feed"
    assert slug.evaluate("(input) => input.validationMessage") == ""
    page.select_option("#new-source-format", "csv")
    page.click("#new-mapping button[type=submit]")
    page.wait_for_url("**/mappings/lab-feed/")
    assert Mapping.objects.get(slug="lab-feed").title == "Lab feed"


def test_a_run_with_nothing_passed_is_not_shown_as_a_success(open_browser, studio) -> None:
    from mappings import actions

    mapping = Mapping.objects.get(slug="json-patient")
    for sample in mapping.samples.all():
        actions.do_delete_sample(sample, acting_user=studio["author"])
    actions.do_run_tests(mapping, acting_user=studio["author"])  # a run of no samples: 0 passed, 0 failed
    browser = open_browser()
    page = browser.page
    browser.open("/")
    badge = page.locator("#mapping-table tr[data-slug=json-patient] .badge").last
    badge.wait_for()
    assert badge.inner_text() == "no samples ran"
    assert "ok" not in (badge.get_attribute("class") or "").split()


def test_it_pages_through_mappings_keeping_the_page_in_the_address(open_browser, studio) -> None:
    from mappings import actions

    for number in range(50):  # with the demo's 6: 56 mappings, two pages of 50
        actions.do_create_mapping(
            acting_user=studio["author"],
            slug=f"site-{number:02}",
            title=f"Site {number:02}",
            source_format="json",
            template="{}",
        )
    browser = open_browser()
    page = browser.page
    browser.open("/")
    rows = page.locator("#mapping-table tbody tr[data-slug]")
    assert rows.count() == 50
    assert page.inner_text("#pages-place") == "1–50 of 56"
    assert page.is_disabled("#pages-previous") and not page.is_disabled("#pages-next")
    first_page = set(rows.evaluate_all("(rows) => rows.map((row) => row.dataset.slug)"))

    page.click("#pages-next")
    page.wait_for_url("**/?page=2")
    page.wait_for_function("document.querySelector('#pages-place').textContent === '51–56 of 56'")
    second_page = set(rows.evaluate_all("(rows) => rows.map((row) => row.dataset.slug)"))
    assert len(second_page) == 6 and not first_page & second_page
    assert first_page | second_page == set(Mapping.objects.values_list("slug", flat=True))  # none left out
    assert page.is_disabled("#pages-next")
    browser.screenshot("mapping-list-page-2")
    page.reload()  # the address names the page: a reload (and its preloaded first read) shows the same rows
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#pages-place") == "51–56 of 56"

    page.fill("#filters input[name=search]", "site-4")  # a new search starts on its first page
    page.wait_for_url("**/?search=site-4")
    page.wait_for_function("document.querySelectorAll('#mapping-table tbody tr[data-slug]').length === 10")
    assert page.locator("#pages-pager").is_hidden()

    browser.allow_console_error("status of 404")
    browser.open("/?source_format=json&page=3")  # past the end (a stale link): the first page of that list
    page.wait_for_url("**/?source_format=json")
    page.wait_for_function("document.querySelector('#pages-place').textContent.startsWith('1–50 of 5')")
