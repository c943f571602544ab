"""The facade pages in Chromium: the demo facade's bindings and live versions, a deploy and a rollback (asked first,
naming the version), the version drop-down's default and marks, removing a binding, a facade and a source (asked
first, refusals shown), adding records to a source, R4 resource types only, the metrics chart, search and pages in
the list, nothing wider than the window, and which version each facade serves on the versions page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from mappings import actions
from mappings.models import AuditEvent, DataSource, Facade, FacadeRequest, Mapping, ResourceBinding

pytestmark = pytest.mark.timeout(180)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def confirm(page, *, expect: str, accept: bool = True) -> str:
    """Answer the page's confirmation dialog; returns what it asked."""
    dialog = page.locator("#confirm-dialog[open]")
    dialog.wait_for()
    asked = dialog.inner_text()
    assert expect in asked, asked
    dialog.locator("#confirm-ok" if accept else "#confirm-cancel").click()
    page.locator("#confirm-dialog[open]").wait_for(state="detached")
    return asked


def no_wider_than_the_window(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def test_it_lists_the_demo_facade(open_browser) -> None:
    browser = open_browser()
    browser.open("/facades/")
    row = browser.page.locator("#facades tr[data-slug=demo]")
    assert "/fhir/demo/" in row.inner_text() and "Patient ← hl7v2-adt-a01 v1" in row.inner_text()
    browser.screenshot("facade-list")


def test_it_deploys_rolls_back_after_asking_and_shows_metrics(open_browser, studio) -> None:
    for path in ("Patient", "Patient?family=every", "Patient/missing", "metadata"):
        requests.get(f"{studio['url']}/fhir/demo/{path}", timeout=10)
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    patient = page.locator("#bindings tr[data-type=Patient]")
    assert "v1" in patient.locator("td.live").inner_text()
    assert "4 requests · 1 error (1 4xx, 0 5xx)" in page.inner_text("#metrics-summary")
    assert page.locator("#metrics-chart rect").count() >= 1

    rollback = patient.locator("button.rollback")
    assert rollback.is_disabled() and rollback.get_attribute("title") == "Nothing earlier was deployed"

    patient.locator("button.deploy").click()
    page.wait_for_selector("#action-result.ok")
    assert "Patient v1 is live: 9 resources indexed." in page.inner_text("#action-result")
    rollback = page.locator("#bindings tr[data-type=Patient] button.rollback", has_text="Roll back to v1")
    rollback.wait_for()  # it names the version it goes back to

    rollback.click()
    asked = confirm(page, expect="Roll back Patient to v1?", accept=False)
    assert "Patient serves v1 now" in asked
    assert not AuditEvent.objects.filter(action="facade.rolled_back").exists()  # cancelled: nothing happened

    rollback.click()
    confirm(page, expect="Roll back Patient to v1?")
    page.wait_for_function("document.querySelector('#action-result').textContent.includes('rolled back to v1')")
    # 5 demo deployments, the deploy and the rollback
    page.wait_for_function("document.querySelectorAll('#deployments tbody tr').length === 7")
    assert "rollback" in page.locator("#deployments tbody tr").first.inner_text()
    browser.screenshot("facade-detail")


def test_it_offers_the_newest_passing_version_and_marks_failing_ones(open_browser, studio) -> None:
    author = studio["author"]
    mapping = Mapping.objects.get(slug="hl7v2-adt-a01")
    sample = mapping.samples.order_by("name").first()
    assertions = list(sample.assertions or [])
    actions.do_update_sample(sample, acting_user=author, assertions=[*assertions, "Patient.gender = 'nonsense'"])
    actions.do_publish_version(mapping, acting_user=author, message="v2 breaks a sample")
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    select = page.locator("#bindings tr[data-type=Patient] select.version")
    assert select.input_value() == "1"  # v2 is newer but fails
    options = select.locator("option").all_inner_texts()
    assert options[0].startswith("v2 · 1 failing") and options[1].startswith("v1 · tests pass · live")
    select.select_option("2")  # chosen anyway: the deploy runs the samples and refuses
    page.locator("#bindings tr[data-type=Patient] button.deploy").click()
    page.wait_for_selector("#action-result.error")
    assert "Not deployed: v2 fails 1 of its samples" in page.inner_text("#action-result")
    browser.allow_console_error("status of 409")

    actions.do_update_sample(sample, acting_user=author, assertions=assertions)
    actions.do_publish_version(mapping, acting_user=author, message="v3 fixed")
    browser.open("/facades/demo/")
    assert page.locator("#bindings tr[data-type=Patient] select.version").input_value() == "3"


def test_it_binds_only_fhir_r4_types_and_pickers_show_titles(open_browser, studio) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    mapping_option = page.locator("#bind-mapping option[value=hl7v2-adt-a01]").inner_text()
    assert mapping_option.startswith(Mapping.objects.get(slug="hl7v2-adt-a01").title[:20])
    source = DataSource.objects.get(name="hl7v2-adt-a01-messages")
    source_option = page.locator("#bind-source option[value=hl7v2-adt-a01-messages]").inner_text()
    assert source.description[:20] in source_option and f"{source.records.count()} records" in source_option
    assert page.locator("#r4-types option").count() == 146

    page.fill("#bind-type", "Observaton")
    page.click("#bind-form button[type=submit]")
    message = page.eval_on_selector("#bind-type", "input => input.validationMessage")
    assert message == "'Observaton' is not a FHIR R4 resource type. Did you mean Observation? Pick one from the list."
    assert not ResourceBinding.objects.filter(resource_type="Observaton").exists()

    page.select_option("#bind-source", "hl7v2-vxu-v04-messages")
    page.fill("#bind-type", "Condition")
    page.click("#bind-form button[type=submit]")
    page.locator("#bindings tr[data-type=Condition]").wait_for()
    assert "Bound Condition" in page.inner_text("#action-result")
    # Ready for the next type: an empty field not marked as wrongly filled, the mapping and source still chosen.
    assert page.input_value("#bind-type") == ""
    assert page.eval_on_selector("#bind-type", "input => !input.matches(':user-invalid')")
    assert page.input_value("#bind-source") == "hl7v2-vxu-v04-messages"
    assert page.input_value("#bind-mapping") == ResourceBinding.objects.get(resource_type="Condition").mapping.slug


def test_it_removes_a_binding_after_asking_and_the_type_is_no_longer_served(open_browser, studio) -> None:
    assert requests.get(f"{studio['url']}/fhir/demo/Immunization", timeout=10).status_code == 200
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    page.locator("#bindings tr[data-type=Immunization] button.remove").click()
    asked = confirm(page, expect="Stop serving Immunization?")
    assert "The mapping hl7v2-vxu-v04 and the source hl7v2-vxu-v04-messages stay" in asked
    page.locator("#bindings tr[data-type=Immunization]").wait_for(state="detached")
    assert "Immunization is no longer served." in page.inner_text("#action-result")
    assert requests.get(f"{studio['url']}/fhir/demo/Immunization", timeout=10).status_code == 404
    # The sources card's "read by" column: demo no longer reads the source; demo-smart (the same types, protected) does.
    read_by = page.locator("#sources tr[data-source=hl7v2-vxu-v04-messages]").inner_text()
    assert "demo-smart/Immunization" in read_by and "demo/Immunization" not in read_by


def test_it_manages_data_sources_from_the_page(open_browser, studio) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")

    # A source a binding reads: asked, then refused with the bindings named.
    page.locator("#sources tr[data-source=hl7v2-adt-a01-messages] button.delete-source").click()
    confirm(page, expect="Delete the source hl7v2-adt-a01-messages?")
    page.wait_for_selector("#action-result.error")
    refusal = page.inner_text("#action-result")
    assert "read by demo-smart/Encounter, demo-smart/Patient, demo/Encounter, demo/Patient" in refusal
    browser.allow_console_error("status of 409")

    # A new source: the chosen format stays after a refusal (the name is taken).
    page.fill("#source-form input[name=name]", "hl7v2-adt-a01-messages")
    page.select_option("#source-format", "csv")
    page.click("#source-form button[type=submit]")
    page.wait_for_function("document.querySelector('#action-result').textContent.includes('Not created')")
    assert page.locator("#source-format").input_value() == "csv"
    page.fill("#source-form input[name=name]", "Bad Name")
    page.click("#source-form button[type=submit]")
    assert "lower-case letters, digits and hyphens" in page.eval_on_selector(
        "#source-form input[name=name]", "input => input.validationMessage"
    )
    page.fill("#source-form input[name=name]", "lab-csv")
    page.click("#source-form button[type=submit]")
    row = page.locator("#sources tr[data-source=lab-csv]")
    row.wait_for()
    assert "0 records" in row.inner_text() and "Source lab-csv created (no records yet)." in page.inner_text(
        "#action-result"
    )
    # Ready for the next source: an empty name not marked as wrongly filled, the format still chosen.
    assert page.input_value("#source-form input[name=name]") == ""
    assert page.eval_on_selector("#source-form input[name=name]", "input => !input.matches(':user-invalid')")
    assert page.locator("#source-format").input_value() == "csv"

    # Records added to an existing source: one pasted, so "1 record".
    row.locator("button.add-records").click()
    page.fill("#records-form input[name=key]", "row-1")
    page.fill("#records-form textarea[name=payload]", "mrn,family\n1,Smith\n")
    page.click("#records-add")
    page.wait_for_function(
        "document.querySelector('#sources tr[data-source=lab-csv] td.records').textContent === '1 record'"
    )
    assert "1 record added to lab-csv." in page.inner_text("#action-result")
    assert DataSource.objects.get(name="lab-csv").records.get().key == "row-1"

    # An unused source is deleted after asking.
    page.locator("#sources tr[data-source=lab-csv] button.delete-source").click()
    asked = confirm(page, expect="Delete the source lab-csv?")
    assert "Its 1 stored record is deleted with it." in asked
    row.wait_for(state="detached")
    assert not DataSource.objects.filter(name="lab-csv").exists()
    browser.screenshot("facade-sources")


def test_it_deletes_a_facade_after_asking(open_browser, studio) -> None:
    actions.do_create_facade(acting_user=studio["author"], slug="ward", title="Ward feed")
    browser = open_browser()
    page = browser.page
    browser.open("/facades/ward/")
    page.click("#delete-facade")
    asked = confirm(page, expect="Delete the facade ward?")
    assert "/fhir/ward/ answers 404 from now on" in asked
    page.wait_for_url("**/facades/")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.locator("#facades tr[data-slug=ward]").count() == 0
    assert requests.get(f"{studio['url']}/fhir/ward/metadata", timeout=10).status_code == 404


def test_it_draws_the_metrics_with_axes_a_legend_and_errors_by_status(open_browser, studio) -> None:
    now = timezone.now()
    FacadeRequest.objects.bulk_create(
        FacadeRequest(
            facade_slug="demo", resource_type="Patient", interaction="read", status=status, latency_ms=3, created_at=now
        )
        for status in (200, 200, 200, 404, 404, 500)
    )
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    assert "6 requests · 3 errors (2 4xx, 1 5xx)" in page.inner_text("#metrics-summary")
    chart = page.locator("#metrics-chart")
    labels = chart.locator(".axis text").all_text_contents()
    assert labels[:3] == ["0", "5", "10"]  # the y axis, up to a round number above the busiest minute (6)
    assert "requests / min" in labels and labels[-1] == "now"  # and an x axis in time, ending now
    assert chart.locator("rect.ok").count() == 1
    assert chart.locator("rect.client-errors").count() == 1 and chart.locator("rect.server-errors").count() == 1
    assert page.locator("#metrics-legend").inner_text().splitlines() == [
        "Successful (2xx, 3xx)",
        "Client errors (4xx)",
        "Server errors (5xx)",
    ]
    row = page.locator("#metrics-types tbody tr", has_text="Patient").inner_text().split("\t")
    assert row[:4] == ["Patient", "6", "2", "1"]
    browser.screenshot("facade-metrics")


def test_it_keeps_long_titles_and_the_version_drop_down_inside_the_page(open_browser, studio) -> None:
    title = "A very long facade title that goes on and on " * 4
    actions.do_create_facade(acting_user=studio["author"], slug="long", title=title.strip()[:200])
    mapping = Mapping.objects.get(slug="hl7v2-adt-a01")
    actions.do_publish_version(mapping, acting_user=studio["author"], message="A long message " * 12)
    browser = open_browser()
    page = browser.page
    for path in ("/facades/", "/facades/long/", "/facades/demo/"):
        browser.open(path)
        no_wider_than_the_window(page)
    card = page.locator(".bindings-card").bounding_box()
    for select in page.locator("#bindings select.version").all():
        box = select.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"], "a version drop-down sticks out of its card"
    for table in (".bindings-card .table-scroll", ".sources-card .table-scroll"):  # every column shows, no scrolling
        assert page.eval_on_selector(table, "box => box.scrollWidth <= box.clientWidth"), table
    metrics = page.locator(".metrics-card").bounding_box()
    assert card["y"] + card["height"] <= metrics["y"]  # nothing of the bindings reaches into the metrics card
    browser.screenshot("facade-long-titles")


def test_it_searches_and_pages_through_facades_keeping_both_in_the_url(open_browser, studio) -> None:
    for number in range(25):
        actions.do_create_facade(acting_user=studio["author"], slug=f"site-{number:02}", title=f"Site {number:02}")
    actions.do_create_facade(acting_user=studio["author"], slug="ward", title="Ward feed")
    browser = open_browser()
    page = browser.page
    browser.open("/facades/")
    total = Facade.objects.count()  # the 26 above and the demo's (demo, demo-smart)
    assert page.locator("#facades tbody tr").count() == 20
    assert page.inner_text("#pages-place") == f"Page 1 of 2 · {total} facades"
    page.click("#pages-next")
    page.wait_for_function("document.querySelector('#pages-place').textContent.startsWith('Page 2')")
    assert page.locator("#facades tbody tr").count() == total - 20 and "page=2" in page.url

    page.fill("#facade-filters input[name=search]", "feed")
    page.wait_for_function("document.querySelectorAll('#facades tbody tr').length === 1")
    assert page.locator("#facades tr[data-slug=ward]").count() == 1
    assert re.search(r"[?&]search=feed", page.url) and "page=" not in page.url
    assert page.inner_text("#pages-place") == "Page 1 of 1 · 1 facade found"

    browser.open("/facades/?search=site-1")  # a shared link, or a reload
    assert page.input_value("#facade-filters input[name=search]") == "site-1"
    assert page.locator("#facades tbody tr").count() == 10


def test_it_shows_on_the_versions_page_which_version_each_facade_serves(open_browser, studio) -> None:
    mapping = Mapping.objects.get(slug="hl7v2-adt-a01")
    actions.do_publish_version(mapping, acting_user=studio["author"], message="v2, not deployed")
    browser = open_browser()
    page = browser.page
    browser.open(f"/mappings/{mapping.slug}/history")
    v1 = page.locator("#versions li[data-number='1']").inner_text()
    assert "served by demo/Patient" in v1 and "served by demo/Encounter" in v1
    assert "served by" not in page.locator("#versions li[data-number='2']").inner_text()
    assert page.locator("#versions a.served").first.get_attribute("href") == "/facades/demo/"


def test_it_shows_no_write_controls_to_a_viewer(open_browser) -> None:
    browser = open_browser("vic")
    page = browser.page
    browser.open("/facades/demo/")
    for selector in ("button.deploy", "button.remove", "#delete-facade", "#bind-form", "button.delete-source"):
        assert page.locator(selector).count() == 0, selector
    assert "9 resources" in page.locator("#bindings tr[data-type=Patient]").inner_text()


def test_the_new_facade_form_makes_the_slug_from_the_title(open_browser) -> None:
    browser = open_browser()
    page = browser.page
    browser.open("/facades/")
    page.click("#new-open")
    assert page.evaluate("document.activeElement.name") == "title"  # the title comes first
    page.keyboard.type("Ward feed: ICU (Müller)")
    assert page.input_value("#new-form input[name=slug]") == "ward-feed-icu-muller"
    assert "Made from the title" in page.inner_text("#facade-slug-hint")
    page.click("#new-form button[type=submit]")
    page.wait_for_url("**/facades/ward-feed-icu-muller/")


def test_it_serves_the_adt_mapping_as_a_new_facade_built_from_the_page(open_browser, studio, tmp_path) -> None:
    message = tmp_path / "adt-a01.hl7"
    message.write_bytes((EXAMPLES / "hl7v2-adt-a01/samples/adt-a01-full.hl7").read_bytes())
    browser = open_browser()
    page = browser.page
    browser.open("/facades/")
    page.click("#new-open")
    page.fill("#new-form input[name=slug]", "Ward Feed")
    page.fill("#new-form input[name=title]", "Ward feed")
    page.click("#new-form button[type=submit]")
    assert "lower-case letters, digits and hyphens" in page.eval_on_selector(
        "#new-form input[name=slug]", "input => input.validationMessage"
    )
    page.fill("#new-form input[name=slug]", "ward")
    page.click("#new-form button[type=submit]")
    page.wait_for_url("**/facades/ward/")
    page.wait_for_selector("body[data-ready]", state="attached")

    page.fill("#source-form input[name=name]", "ward-messages")
    page.select_option("#source-format", "hl7v2")
    page.set_input_files("#source-form input[name=files]", str(message))
    page.click("#source-form button[type=submit]")
    page.wait_for_selector("#action-result:has-text('Source ward-messages created with 1 record.')")
    page.fill("#bind-form input[name=resource_type]", "Patient")
    page.select_option("#bind-mapping", "hl7v2-adt-a01")
    page.select_option("#bind-source", "ward-messages")
    page.click("#bind-form button[type=submit]")
    row = page.locator("#bindings tr[data-type=Patient]")
    row.wait_for()
    row.locator("button.deploy").click()
    page.wait_for_selector("#action-result:has-text('Patient v1 is live: 1 resource indexed.')")
    browser.screenshot("facade-built-in-the-page")

    bundle = requests.get(f"{studio['url']}/fhir/ward/Patient", timeout=10).json()
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["name"][0]["family"] == "EVERYMAN"


def test_it_shows_a_deployment_still_indexing_beside_the_live_one(open_browser, studio) -> None:
    from mappings.models import Deployment

    binding = ResourceBinding.objects.select_related("mapping__latest_version").get(
        facade__slug="demo", resource_type="Patient"
    )
    # As a big source leaves it while a worker builds its index: not ready, not superseded.
    Deployment.objects.create(binding=binding, version=binding.mapping.latest_version, deployed_by=studio["author"])
    browser = open_browser()
    browser.open("/facades/demo/")
    patient = browser.page.locator("#bindings tr[data-type=Patient]")
    patient.locator("text=indexing").wait_for()
    assert "v1 (v1 indexing…)" in patient.inner_text()
