"""The Profiles pages in Chromium: find a core profile, read its element tree (snapshot and differential) and its
extensions; an author uploads a differential-only profile (its snapshot generated) and deletes it, and authors an
extension with the form; a viewer gets no write controls."""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest

from mappings.models import ProfileDefinition, ProfilePackage

pytestmark = pytest.mark.timeout(120)
BP = "http://hl7.org/fhir/StructureDefinition/bp"
PROFILE = {
    "resourceType": "StructureDefinition",
    "url": "http://example.org/fhir/StructureDefinition/page-patient",
    "name": "PagePatient",
    "title": "Page patient",
    "status": "draft",
    "kind": "resource",
    "abstract": False,
    "type": "Patient",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
    "derivation": "constraint",
    "differential": {
        "element": [
            {"id": "Patient", "path": "Patient"},
            {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1, "mustSupport": True},
        ]
    },
}


def test_a_viewer_finds_a_core_profile_and_reads_its_element_tree(open_browser) -> None:
    browser = open_browser("vic")
    page = browser.page
    browser.open("/profiles/")
    assert page.locator("#upload-open").count() == 0 and page.locator("#extension-open").count() == 0
    page.fill("#filters input[name=search]", "us-core-patient")
    page.wait_for_selector("#profiles tr[data-url='http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient']")
    assert page.locator("#profiles tbody tr").count() == 1
    assert "search=us-core-patient" in page.url  # the filter is kept in the address
    page.click("#profiles tbody a")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.wait_for_selector("#extensions tr[data-url$='us-core-race']")
    browser.screenshot("profile-us-core-patient")

    browser.open(f"/profiles/{BP.replace('/', '%2F').replace(':', '%3A')}")
    page.wait_for_selector("#elements tr[data-id='Observation.component:SystolicBP']")
    code = page.locator("#elements tr[data-id='Observation.code.coding:BPCode.code']")
    assert "85354-9" in code.inner_text()
    snapshot_rows = page.locator("#elements tbody tr").count()
    page.click("#view-differential")
    page.wait_for_function(f"document.querySelectorAll('#elements tbody tr').length < {snapshot_rows}")
    assert page.locator("#elements tbody tr").count() == 30  # bp's differential
    assert page.get_attribute("#view-differential", "aria-selected") == "true"
    browser.screenshot("profile-bp-differential")


def test_an_author_uploads_a_differential_sees_its_generated_snapshot_and_deletes_it(open_browser, tmp_path) -> None:
    browser = open_browser("ana")
    page = browser.page
    browser.open("/profiles/")
    page.click("#upload-open")
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "StructureDefinition", "url": "urn:x", "baseDefinition": "urn:nowhere"}')
    page.set_input_files("#upload-file", str(broken))
    browser.allow_console_error("400")
    page.click("#upload-submit")
    page.wait_for_selector("#upload-error:not([hidden])")
    assert "unknown base definition urn:nowhere" in page.inner_text("#upload-error")

    good = tmp_path / "page-patient.json"
    good.write_text(json.dumps(PROFILE))
    page.set_input_files("#upload-file", str(good))
    page.click("#upload-submit")
    page.wait_for_url(re.compile(r".*/profiles/\d+$"))
    page.wait_for_selector("#elements tr[data-id='Patient.birthDate']")
    assert "generated from the differential" in page.inner_text("#profile-facts")
    assert page.locator("#elements tr[data-id='Patient.birthDate']").inner_text().split("\t")[1].strip() == "1..1"
    browser.screenshot("profile-uploaded")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-profile")
    page.wait_for_url(re.compile(r".*/profiles/\?source=uploaded$"))
    assert not ProfileDefinition.objects.exists()


def test_an_author_creates_an_extension_with_the_form(open_browser) -> None:
    browser = open_browser("ana")
    page = browser.page
    browser.open("/profiles/")
    page.click("#extension-open")
    page.fill("#extension-url", "http://example.org/fhir/StructureDefinition/shoe-size")
    page.fill("#extension-name", "shoe size")
    page.fill("#extension-context", "Patient")
    page.click("#extension-form button[type=submit]")  # the name's rule, in words
    assert page.eval_on_selector("#extension-name", "input => input.validationMessage") == (
        "A capital letter, then letters, digits and _"
    )
    page.fill("#extension-name", "ShoeSize")
    page.fill("#extension-context", "Patient")
    page.select_option("#extension-type", "decimal")
    page.click("#extension-form button[type=submit]")
    page.wait_for_selector("#elements tr[data-id='Extension.value[x]']")
    assert "decimal" in page.inner_text("#profile-facts")
    stored = ProfileDefinition.objects.get(url="http://example.org/fhir/StructureDefinition/shoe-size")
    assert stored.is_extension and stored.snapshot_generated


def test_an_author_loads_an_ig_package_and_deletes_it_as_a_whole(open_browser, tmp_path) -> None:
    archive = tmp_path / "page.ig-1.0.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        files = {
            "package/package.json": {
                "name": "page.ig",
                "version": "1.0.0",
                "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
            },
            "package/StructureDefinition-page-patient.json": PROFILE,
        }
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    browser = open_browser("ana")
    page = browser.page
    browser.open("/profiles/")
    page.click("#upload-open")
    page.set_input_files("#upload-file", str(archive))
    page.click("#upload-submit")
    page.wait_for_url(re.compile(r".*/profiles/\?source=uploaded$"))
    page.wait_for_selector("#packages tr[data-package='page.ig#1.0.0']")
    page.wait_for_selector(f"#profiles tr[data-url='{PROFILE['url']}']")
    assert "page.ig#1.0.0" in page.inner_text(f"#profiles tr[data-url='{PROFILE['url']}']")
    browser.screenshot("profile-package")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#packages tr[data-package='page.ig#1.0.0'] button")
    page.wait_for_selector("#packages-section[hidden]", state="attached")
    assert not ProfilePackage.objects.exists() and not ProfileDefinition.objects.exists()


def test_the_editor_completes_known_extension_urls(open_browser) -> None:
    browser = open_browser("ana")
    page = browser.page
    browser.open("/mappings/hl7v2-adt-a01/")
    page.click(".template-pane .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type('\n{{ extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-bir')
    page.keyboard.press("Control+Space")
    popup = page.locator(".cm-tooltip-autocomplete")
    popup.wait_for()
    option = popup.locator("li").first
    assert option.locator(".cm-completionLabel").inner_text().endswith("us-core-birthsex")
    assert option.locator(".cm-completionDetail").inner_text() == "code"
    browser.screenshot("editor-completion-extension")
