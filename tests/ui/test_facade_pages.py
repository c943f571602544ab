"""The facade pages in Chromium: the demo facade's bindings and live versions, a deploy and a rollback from the page,
and the request metrics after a few FHIR calls."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.timeout(120)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_it_lists_the_demo_facade(open_browser) -> None:
    browser = open_browser()
    browser.open("/facades/")
    row = browser.page.locator("#facades tr[data-slug=demo]")
    assert "/fhir/demo/" in row.inner_text() and "Patient ← hl7v2-adt-a01 v1" in row.inner_text()
    browser.screenshot("facade-list")


def test_it_deploys_rolls_back_and_shows_metrics(open_browser, studio) -> None:
    for path in ("Patient", "Patient?family=every", "Patient/missing", "metadata"):
        requests.get(f"{studio['url']}/fhir/demo/{path}", timeout=10)
    browser = open_browser()
    page = browser.page
    browser.open("/facades/demo/")
    patient = page.locator("#bindings tr[data-type=Patient]")
    assert "v1" in patient.inner_text()
    assert "4 requests · 1 errors" in page.inner_text("#metrics-summary")
    assert page.locator("#metrics-chart rect").count() >= 1

    patient.locator("button.rollback").click()
    page.wait_for_selector("#action-result.error")
    assert "no earlier deployment" in page.inner_text("#action-result")
    browser.allow_console_error("status of 400")

    patient.locator("button.deploy").click()
    page.wait_for_selector("#action-result.ok")
    assert "Patient v1 is live" in page.inner_text("#action-result")
    page.locator("#bindings tr[data-type=Patient] button.rollback").click()
    page.wait_for_function("document.querySelector('#action-result').textContent.includes('rolled back to v1')")
    # 5 demo deployments, the deploy and the rollback
    page.wait_for_function("document.querySelectorAll('#deployments tbody tr').length === 7")
    assert "rollback" in page.locator("#deployments tbody tr").first.inner_text()
    browser.screenshot("facade-detail")


def test_it_serves_the_adt_mapping_as_a_new_facade_built_from_the_page(open_browser, studio, tmp_path) -> None:
    message = tmp_path / "adt-a01.hl7"
    message.write_bytes((EXAMPLES / "hl7v2-adt-a01/samples/adt-a01-full.hl7").read_bytes())
    browser = open_browser()
    page = browser.page
    browser.open("/facades/")
    page.click("#new-open")
    page.fill("#new-form input[name=slug]", "ward")
    page.fill("#new-form input[name=title]", "Ward feed")
    page.click("#new-form button[type=submit]")
    page.wait_for_url("**/facades/ward/")
    page.wait_for_selector("body[data-ready]", state="attached")

    page.fill("#source-form input[name=name]", "ward-messages")
    page.select_option("#source-format", "hl7v2")
    page.set_input_files("#source-form input[name=files]", str(message))
    page.click("#source-form button[type=submit]")
    page.wait_for_selector("#action-result:has-text('Source created with 1 records')")
    page.fill("#bind-form input[name=resource_type]", "Patient")
    page.select_option("#bind-mapping", "hl7v2-adt-a01")
    page.select_option("#bind-source", "ward-messages")
    page.click("#bind-form button[type=submit]")
    row = page.locator("#bindings tr[data-type=Patient]")
    row.wait_for()
    row.locator("button.deploy").click()
    page.wait_for_selector("#action-result:has-text('Patient v1 is live: 1 resources indexed')")
    browser.screenshot("facade-built-in-the-page")

    bundle = requests.get(f"{studio['url']}/fhir/ward/Patient", timeout=10).json()
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["name"][0]["family"] == "EVERYMAN"


def test_it_shows_a_deployment_still_indexing_beside_the_live_one(open_browser, studio) -> None:
    from mappings.models import Deployment, ResourceBinding

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
