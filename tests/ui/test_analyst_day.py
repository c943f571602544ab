"""An analyst's whole day in Chromium, through the pages only (issue 11's "done when"): a new CSV mapping from the
starter, edited into a transaction Bundle of a Patient and an Observation per row, a tested sample, v1 published,
a facade over a stored source deployed and queried as a client would, v2 published, compared and deployed, and a
rollback to v1. A screenshot of the whole page after each of its 13 steps lands in
test-artifacts/ui/analyst-day-NN-*.png."""

from __future__ import annotations

import time

import pytest
import requests

from mappings.models import DataSource, Mapping

pytestmark = pytest.mark.timeout(480)  # one test walking ten pages; each step waits 10 s at most (BrowserPage)

SLUG = "clinic-registrations"
EDITOR = f"/mappings/{SLUG}/"

# The clinic's registration file: what the analyst pastes into the Sample pane and keeps as a sample (2 rows) ...
SAMPLE_CSV = (
    "mrn,family,given,birth_date,weight_kg\n2001,Hopper,Grace,1906-12-09,61.5\n2002,Noether,Emmy,1882-03-23,58\n"
)
# ... and a day's file stored in the facade's source (3 rows, one record).
RECORDS_CSV = (
    "mrn,family,given,birth_date,weight_kg\n"
    "3001,Curie,Marie,1867-11-07,55\n"
    "3002,Franklin,Rosalind,1920-07-25,52.5\n"
    "3003,Meitner,Lise,1878-11-07,50\n"
)
TEMPLATE = """\
{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {%- for row in msg %}
    {% set patient_id = fhir_id("Patient", row.mrn) %}
    {"resource": {"resourceType": "Patient", "id": {{ patient_id | tojson }},
                  "identifier": [{{ identifier(row.mrn, "urn:example:mrn") }}],
                  "name": [{"family": {{ row.family | tojson }}, "given": [{{ row.given | tojson }}]}],
                  "birthDate": {{ row.birth_date | fhir_date | tojson }}},
     "request": {"method": "PUT", "url": "Patient/{{ patient_id }}"}},
    {% set weight_id = fhir_id("Observation", row.mrn, "weight") %}
    {"resource": {"resourceType": "Observation", "id": {{ weight_id | tojson }}, "status": "final",
                  "code": {{ codeable_concept("29463-7", "http://loinc.org", "Body weight") }},
                  "subject": {{ reference("Patient", patient_id) }},
                  "valueQuantity": {{ quantity(row.weight_kg | decimal, "kg", "http://unitsofmeasure.org", "kg") }}},
     "request": {"method": "PUT", "url": "Observation/{{ weight_id }}"}},
    {%- endfor %}
  ]
}
"""
PATIENT_OPENS = '{"resourceType": "Patient",'
ACTIVE_PATIENT_OPENS = '{"resourceType": "Patient", "active": true,'


class Walk:
    """The analyst's browser, the studio's address, numbered screenshots and how long each step took."""

    def __init__(self, browser, url: str) -> None:
        self.browser = browser
        self.page = browser.page
        self.url = url
        self.shots = 0
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def screenshot(self, name: str) -> None:
        """The whole page, not only the window: the step's result may be below the fold (the facade's sources)."""
        self.shots += 1
        path = self.browser.screenshot(f"analyst-day-{self.shots:02}-{name}", full_page=True)
        assert path.stat().st_size > 10_000, path  # a picture of the page, not of a blank one
        now = time.perf_counter()
        self.timings[name] = round(now - self.started, 1)
        self.started = now

    def fhir(self, path: str) -> dict:
        """What a client app asks the facade: plain HTTP, no studio session."""
        answer = requests.get(f"{self.url}/fhir/clinic/{path}", headers={"Accept": "application/fhir+json"}, timeout=15)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        return answer.json()


# --- the editor's moving parts ----------------------------------------------------------------------------------------


def replace_text(page, pane: str, text: str) -> None:
    """Select all in a CodeMirror pane and type the new text in one go (as a paste would)."""
    page.click(f"{pane} .cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def replace_all(page, find: str, replacement: str) -> None:
    """CodeMirror's search-and-replace panel (Ctrl-F), as the analyst changes a line."""
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+f")
    page.fill(".template-pane input[name=search]", find)
    page.fill(".template-pane input[name=replace]", replacement)
    page.click(".template-pane button[name=replaceAll]")
    page.keyboard.press("Escape")


def wait_for_preview_of_the_text(page) -> None:
    """The preview on screen is the answer to the newest render, made from the template as it is now."""
    page.wait_for_function(
        "window.fhirStudio.lastRenderedTemplate === window.fhirStudio.templateText()"
        " && document.body.dataset.previewSeq === String(window.fhirStudio.renderSeq)"
    )


def expect_no_problems(page) -> None:
    assert page.locator("#problems .problem").count() == 0, page.inner_text("#problems")
    assert page.inner_text("#problems") == "No problems: the output is valid FHIR R4."
    assert page.inner_text("#problem-count") == "0"


def save_with_ctrl_s(page) -> int:
    """Ctrl-S, nothing asked (the template compiles); returns the saved revision."""
    page.keyboard.press("Control+s")
    page.wait_for_function("document.querySelector('#save-state').textContent.startsWith('saved')")
    assert page.locator("dialog[open]").count() == 0
    return int(page.inner_text("#save-state").rsplit(" ", 1)[1])


def wait_for_a_new_run(page, before: int | None) -> None:
    page.wait_for_function(f"window.fhirStudio.lastRun && window.fhirStudio.lastRun.id !== {before or 0}")


def last_run_id(page) -> int | None:
    return page.evaluate("window.fhirStudio.lastRun?.id ?? null")


def publish(page, message: str, expect_tests: str) -> None:
    """The publish dialog shows the draft's test result; a passing draft publishes without a second question."""
    page.click("#publish-open")
    tests = page.locator("#publish-tests.ok")
    tests.wait_for()
    assert expect_tests in tests.inner_text(), tests.inner_text()
    page.fill("#publish-form textarea[name=message]", message)
    page.click("#publish")
    page.locator("#publish-dialog[open]").wait_for(state="detached")
    assert page.locator("#ask-dialog[open]").count() == 0


# --- the facade page's moving parts -----------------------------------------------------------------------------------


def binding_row(page, resource_type: str):
    return page.locator(f"#bindings tr[data-type={resource_type}]")


def deploy(page, resource_type: str, version: int, indexed: int) -> None:
    row = binding_row(page, resource_type)
    select = row.locator("select.version")
    assert select.input_value() == str(version)  # offered first: the newest version whose samples pass
    assert select.locator("option:checked").inner_text().startswith(f"v{version} · tests pass")
    row.locator("button.deploy").click()
    page.wait_for_selector(
        f"#action-result.ok:has-text('{resource_type} v{version} is live: {indexed} resources indexed.')"
    )
    page.wait_for_function(
        f"document.querySelector('#bindings tr[data-type={resource_type}] td.live')?.textContent === 'v{version}'"
    )


# --- the day, step by step --------------------------------------------------------------------------------------------


def create_the_mapping_from_the_csv_starter(walk: Walk) -> None:
    page = walk.page
    walk.browser.open("/")
    page.click("#new-mapping-open")
    page.locator("#new-mapping input[name=title]").press_sequentially("Clinic registrations")
    assert page.input_value("#new-mapping input[name=slug]") == SLUG  # the slug follows the title
    page.select_option("#new-source-format", "csv")
    walk.screenshot("new-mapping-form")
    page.click("#new-mapping button[type=submit]")

    # The editor opens on the CSV starter and its sample, already previewing a valid Bundle.
    page.wait_for_url(f"**{EDITOR}")
    page.wait_for_selector("body[data-preview-seq]", state="attached")
    assert page.inner_text("#mapping-title") == "Clinic registrations"
    assert "Starter: a CSV file with a header row" in page.evaluate("window.fhirStudio.templateText()")
    assert page.input_value("#sample-select") == "starter"
    assert "1001,Lovelace,Ada" in page.inner_text("#payload-tab .cm-content")
    assert '"family": "Lovelace"' in page.inner_text(".output-pane .cm-content")
    assert page.inner_text("#save-state") == "saved · revision 1"
    walk.screenshot("editor-opens-on-the-starter")


def write_the_template(walk: Walk) -> None:
    page = walk.page
    # The clinic's own file in the Sample pane, then the template rewritten for it.
    replace_text(page, "#payload-tab", SAMPLE_CSV)
    assert page.input_value("#sample-select") == ""  # pasted text now, not the starter sample
    replace_text(page, ".template-pane", TEMPLATE)
    assert page.evaluate("window.fhirStudio.templateText()") == TEMPLATE
    assert page.inner_text("#save-state") == "unsaved changes"
    wait_for_preview_of_the_text(page)

    # The preview: a transaction Bundle with a Patient and an Observation per row, and nothing to complain about.
    output = page.evaluate("window.fhirStudio.lastResult.output")
    assert output["resourceType"] == "Bundle" and output["type"] == "transaction"
    types = [entry["resource"]["resourceType"] for entry in output["entry"]]
    assert types == ["Patient", "Observation", "Patient", "Observation"]
    assert output["entry"][1]["resource"]["valueQuantity"]["value"] == 61.5
    assert '"family": "Hopper"' in page.inner_text(".output-pane .cm-content")  # on screen, not only in the answer
    expect_no_problems(page)

    assert save_with_ctrl_s(page) == 2
    assert Mapping.objects.select_related("draft").get(slug=SLUG).draft.template == TEMPLATE
    walk.screenshot("template-saved-preview-valid")


def add_a_tested_sample(walk: Walk) -> None:
    page = walk.page
    page.click("#tests-tab-button")
    page.click("#sample-new")  # "Add sample from the payload…": the clinic's two rows in the Sample pane
    page.fill("#sample-form input[name=name]", "two-registrations")
    page.fill(
        "#sample-form textarea[name=assertions]",
        "Bundle.entry.resource.ofType(Patient).count() = 2\n"
        "Bundle.entry.resource.ofType(Observation).where(valueQuantity.value = 58).exists()",
    )
    before = last_run_id(page)
    page.click("#sample-save")
    wait_for_a_new_run(page, before)  # saving a sample runs the samples
    row = page.locator("#cases tr[data-case=two-registrations]")
    row.locator(".badge.ok").wait_for()

    # And once more by hand: every sample green, the toolbar badge too.
    before = last_run_id(page)
    page.click("#run-tests")
    wait_for_a_new_run(page, before)
    assert page.inner_text("#cases tr[data-case=two-registrations] .badge") == "passed"
    assert page.inner_text("#cases tr[data-case=starter] .badge") == "passed"
    assert page.inner_text("#run-summary").startswith("Last run: 2 passed, 0 failed (draft revision 2")
    assert page.inner_text("#test-state") == "tests: 2 passed"
    assert "ok" in page.get_attribute("#test-state", "class").split()
    sample = Mapping.objects.get(slug=SLUG).samples.get(name="two-registrations")
    assert sample.payload == SAMPLE_CSV
    walk.screenshot("samples-green")


def publish_v1(walk: Walk) -> None:
    page = walk.page
    publish(page, "Clinic registrations: a Patient and a body weight per row", "2 passed, 0 failed")
    page.wait_for_selector("#banner:has-text('Published version 1.')")
    assert Mapping.objects.get(slug=SLUG).versions.get().number == 1
    walk.screenshot("v1-published")


def build_and_deploy_the_facade(walk: Walk) -> None:
    page = walk.page
    page.click("header nav >> text=Facades")
    page.wait_for_url("**/facades/")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.click("#new-open")
    page.fill("#new-form input[name=slug]", "clinic")
    page.fill("#new-form input[name=title]", "Clinic registrations")
    page.click("#new-form button[type=submit]")
    page.wait_for_url("**/facades/clinic/")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#bindings tbody") == "Nothing bound yet."

    # A stored CSV source, then the day's file pasted into it as one record.
    page.fill("#source-form input[name=name]", "clinic-registrations")
    page.select_option("#source-format", "csv")
    page.click("#source-form button[type=submit]")
    page.wait_for_selector("#action-result.ok:has-text('Source clinic-registrations created (no records yet).')")
    source = page.locator("#sources tr[data-source=clinic-registrations]")
    source.locator("button.add-records").click()
    page.fill("#records-form input[name=key]", "registrations-2026-03-02.csv")
    page.fill("#records-form textarea[name=payload]", RECORDS_CSV)
    page.click("#records-add")
    page.wait_for_selector("#action-result.ok:has-text('1 record added to clinic-registrations.')")
    page.wait_for_function(
        "document.querySelector('#sources tr[data-source=clinic-registrations] td.records')?.textContent === '1 record'"
    )
    assert DataSource.objects.get(name="clinic-registrations").records.get().payload == RECORDS_CSV

    # Patient and Observation, both from the mapping over the source.
    for resource_type in ("Patient", "Observation"):
        page.fill("#bind-type", resource_type)
        page.select_option("#bind-mapping", SLUG)
        page.select_option("#bind-source", "clinic-registrations")
        page.click("#bind-form button[type=submit]")
        binding_row(page, resource_type).wait_for()
        assert f"Bound {resource_type}. Deploy a version to serve it." in page.inner_text("#action-result")
    assert "clinic/Observation, clinic/Patient" in source.inner_text()  # read by

    deploy(page, "Patient", 1, 3)
    deploy(page, "Observation", 1, 3)
    assert page.inner_text("#status") == "active"
    walk.screenshot("facade-v1-live")


def query_it_as_a_client(walk: Walk) -> None:
    bundle = walk.fhir("Patient")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 3
    families = sorted(entry["resource"]["name"][0]["family"] for entry in bundle["entry"])
    assert families == ["Curie", "Franklin", "Meitner"]
    assert not any("active" in entry["resource"] for entry in bundle["entry"])

    curie = next(entry["resource"] for entry in bundle["entry"] if entry["resource"]["name"][0]["family"] == "Curie")
    read = walk.fhir(f"Patient/{curie['id']}")
    assert read["resourceType"] == "Patient" and read["id"] == curie["id"]
    assert read["identifier"][0]["value"] == "3001" and read["birthDate"] == "1867-11-07"

    weights = walk.fhir(f"Observation?subject=Patient/{curie['id']}")
    assert weights["total"] == 1
    assert weights["entry"][0]["resource"]["valueQuantity"] == {
        "value": 55,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    walk.browser.open("/facades/clinic/")  # the request count the analyst sees
    assert walk.page.inner_text("#metrics-summary").startswith("3 requests · 0 errors")
    walk.screenshot("facade-after-client-queries")


def publish_v2_and_compare(walk: Walk) -> None:
    page = walk.page
    page.click(f"#bindings tr[data-type=Patient] td.mapping a[href='{EDITOR}']")  # back to the editor
    page.wait_for_url(f"**{EDITOR}")
    page.wait_for_selector("body[data-preview-seq]", state="attached")
    # The editor opens on the first sample (the starter); the analyst picks theirs to see its output.
    page.select_option("#sample-select", "two-registrations")
    wait_for_preview_of_the_text(page)
    page.wait_for_function("window.fhirStudio.lastResult?.output?.entry?.[0]?.resource?.name?.[0]?.family === 'Hopper'")
    expect_no_problems(page)

    # Every Patient is active now.
    replace_all(page, PATIENT_OPENS, ACTIVE_PATIENT_OPENS)
    wait_for_preview_of_the_text(page)
    patients = [entry["resource"] for entry in page.evaluate("window.fhirStudio.lastResult.output")["entry"]][::2]
    assert [patient.get("active") for patient in patients] == [True, True]
    expect_no_problems(page)
    assert save_with_ctrl_s(page) == 3

    # The sample says so too: one more assertion, and the samples run again on the saved draft.
    page.click("#tests-tab-button")
    row = page.locator("#cases tr[data-case=two-registrations]")
    row.get_by_role("button", name="Edit").click()
    assertions = page.locator("#sample-form textarea[name=assertions]")
    assertions.press("Control+End")
    assertions.press_sequentially("\nBundle.entry.resource.ofType(Patient).all(active = true)")
    before = last_run_id(page)
    page.click("#sample-save")
    wait_for_a_new_run(page, before)
    assert page.inner_text("#cases tr[data-case=two-registrations] .badge") == "passed"
    assert "all(active = true)" in row.inner_text()
    sample = Mapping.objects.get(slug=SLUG).samples.get(name="two-registrations")
    assert sample.payload == SAMPLE_CSV and len(sample.assertions) == 3
    walk.screenshot("v2-edited-sample-green")

    publish(page, "Registered patients are active", "Tests on draft revision 3: 2 passed, 0 failed")
    page.wait_for_selector("#banner:has-text('Published version 2.')")
    walk.screenshot("v2-published")

    # The versions page: v1 against v2 shows the one changed line; v1 is what the facade serves.
    page.click("#history-link")
    page.wait_for_url(f"**{EDITOR}history")
    page.wait_for_selector("body[data-ready]", state="attached")
    v1 = page.locator("#versions li[data-number='1']")
    assert "served by clinic/Patient" in v1.inner_text() and "served by clinic/Observation" in v1.inner_text()
    assert "Registered patients are active" in page.inner_text("#versions li[data-number='2']")
    page.select_option("#compare-from", "1")
    page.select_option("#compare-to", "2")
    page.wait_for_function("document.querySelector('#label-to').textContent.startsWith('v2')")
    assert page.inner_text("#label-from").startswith("v1")
    changed = page.locator("#diff .cm-changedLine")
    changed.first.wait_for()
    changed_text = changed.all_inner_texts()
    assert any('"active": true' in text for text in changed_text), changed_text
    assert not any("Observation" in text for text in changed_text), changed_text
    walk.screenshot("versions-v1-v2-diff")


def deploy_v2(walk: Walk) -> None:
    page = walk.page
    page.click("#versions li[data-number='1'] a.served >> text=served by clinic/Patient")
    page.wait_for_url("**/facades/clinic/")
    page.wait_for_selector("body[data-ready]", state="attached")
    deploy(page, "Patient", 2, 3)
    assert "Roll back to v1" in binding_row(page, "Patient").locator("button.rollback").inner_text()
    assert binding_row(page, "Observation").locator("td.live").inner_text() == "v1"

    bundle = walk.fhir("Patient")
    assert bundle["total"] == 3
    assert [entry["resource"].get("active") for entry in bundle["entry"]] == [True, True, True]
    walk.screenshot("facade-v2-live")


def roll_back_to_v1(walk: Walk) -> None:
    page = walk.page
    binding_row(page, "Patient").locator("button.rollback").click()
    dialog = page.locator("#confirm-dialog[open]")
    dialog.wait_for()
    asked = dialog.inner_text()
    assert "Roll back Patient to v1?" in asked and "Patient serves v2 now." in asked, asked
    walk.screenshot("rollback-asks")
    page.click("#confirm-ok")
    page.wait_for_selector("#action-result.ok:has-text('Patient rolled back to v1.')")
    page.wait_for_function("document.querySelector('#bindings tr[data-type=Patient] td.live')?.textContent === 'v1'")
    history = page.locator("#deployments tbody tr")
    assert "rollback" in history.first.inner_text() and "v1" in history.first.inner_text()

    bundle = walk.fhir("Patient")
    assert bundle["total"] == 3
    assert not any("active" in entry["resource"] for entry in bundle["entry"])
    walk.screenshot("rolled-back-to-v1")


def test_an_analysts_day_from_a_csv_starter_to_a_rollback(open_browser, studio) -> None:
    walk = Walk(open_browser(), studio["url"])
    create_the_mapping_from_the_csv_starter(walk)
    write_the_template(walk)
    add_a_tested_sample(walk)
    publish_v1(walk)
    build_and_deploy_the_facade(walk)
    query_it_as_a_client(walk)
    publish_v2_and_compare(walk)
    deploy_v2(walk)
    roll_back_to_v1(walk)
    assert walk.shots == 13
    print("analyst's day, seconds per step:", walk.timings, "total", round(sum(walk.timings.values()), 1))
