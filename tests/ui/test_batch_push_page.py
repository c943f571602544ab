"""Push results in Chromium (issue 16): a viewer opens a batch of ADT messages pushed as transactions to a FHIR store
of the studio's own and sees the sums and, per message, each entry's status, location and ETag (the one message the
server refused shows no entries, and is the only one left by "only the failed"); an author pushes a test run from the
connections page and sees each sample's entries; a viewer gets no push form."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest

from mappings import actions
from mappings.actions.connections import do_create_connection
from mappings.fhir_types import R4_RESOURCE_TYPES
from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.models import BatchChunk, Mapping
from tests.store.conftest import make_store_facade
from tests.tasks.test_batch_push import adt

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def target(studio, settings) -> str:
    """A store facade without AllergyIntolerance on the live server, and the connection `target` to it."""
    kept = [name for name in R4_RESOURCE_TYPES if name != "AllergyIntolerance"]
    made = make_store_facade(slug="target", store="target-data", resource_types=kept)
    base = f"{studio['url']}/fhir/{made['slug']}".replace("://localhost:", "://127.0.0.1:")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    do_create_connection(acting_user=None, name="target", base_url=base)
    return base


def pushed_batch(studio, kind: str = "transaction") -> int:
    """A batch of three ADT messages (the middle one with an allergy the store refuses), run here as workers would."""
    version = Mapping.objects.get(slug="hl7v2-adt-a01").latest_version
    feed = b"\r\n".join([adt(40, allergy=False), adt(41, allergy=True), adt(42, allergy=False)]) + b"\r\n"
    batch = actions.do_start_batch(
        version,
        acting_user=studio["author"],
        uploads=[("adt.hl7", io.BytesIO(feed))],
        push_to={"connection": "target", "kind": kind},
    )
    plan_batch_direct(batch.pk)
    for chunk_id in BatchChunk.objects.filter(batch_id=batch.pk).values_list("pk", flat=True):
        run_batch_chunk_direct(chunk_id)
    return batch.pk


def test_a_viewer_sees_what_the_server_answered_for_each_pushed_message(open_browser, studio, target) -> None:
    batch_id = pushed_batch(studio)
    browser = open_browser("vic")
    page = browser.page
    browser.open(f"/batches/{batch_id}/")
    page.wait_for_selector("body[data-pushes-shown='3']", state="attached")
    assert page.locator("#push-section").is_visible()
    assert page.locator("#push-connection").inner_text() == "target"
    assert page.locator("#push-messages").inner_text() == "3 messages pushed as transactions"
    assert page.locator("#push-refused").inner_text() == "1 not kept whole"
    codes = page.locator("#pushes tbody tr").evaluate_all("rows => rows.map(row => row.dataset.code)")
    assert codes == ["ok", "push_refused", "ok"]
    first = page.locator("#pushes tbody tr[data-seq='0']")
    assert first.locator("li[data-status='201']").count() == first.locator("li").count() > 1
    assert "Patient/" in first.inner_text() and "/_history/1" in first.inner_text() and 'W/"1"' in first.inner_text()
    refused = page.locator("#pushes tbody tr[data-seq='1']")
    assert refused.locator("li").count() == 0 and "failed messages below" in refused.inner_text()
    assert page.locator("#failures tbody tr[data-code='push_refused']").count() == 1
    assert page.locator("#download-push").get_attribute("href") == f"/api/batches/{batch_id}/results?format=push"
    browser.screenshot("batch-push-results", full_page=True)

    page.check("#pushes-failed-only")
    page.wait_for_selector("body[data-pushes-shown='1']", state="attached")
    assert page.locator("#pushes tbody tr").evaluate_all("rows => rows.map(row => row.dataset.seq)") == ["1"]


def test_a_batch_without_push_to_shows_no_push_section(open_browser, studio) -> None:
    version = Mapping.objects.get(slug="hl7v2-adt-a01").latest_version
    batch = actions.do_start_batch(
        version, acting_user=studio["author"], uploads=[("adt.hl7", io.BytesIO(adt(50, allergy=False)))]
    )
    browser = open_browser("ana")
    browser.open(f"/batches/{batch.pk}/")
    assert not browser.page.locator("#push-section").is_visible()


def test_an_author_pushes_a_test_run_from_the_connections_page(open_browser, studio, target) -> None:
    mapping = Mapping.objects.get(slug="hl7v2-adt-a01")
    run = actions.do_run_tests(mapping, acting_user=studio["author"], version=mapping.latest_version)
    assert run.results, "the demo mapping has samples"
    browser = open_browser("ana")
    page = browser.page
    browser.open("/connections/")
    form = page.locator("#run-push-form")
    form.locator("[name=mapping]").fill("hl7v2-adt-a01")
    form.locator("[name=mapping]").dispatch_event("change")
    page.wait_for_selector(f"#run-push-form select[name=test_run] option[value='{run.pk}']", state="attached")
    form.locator("[name=test_run]").select_option(str(run.pk))
    form.locator("button[type=submit]").click()
    result = page.locator("#run-push-result")
    result.and_(page.locator("[data-code]")).wait_for()
    samples = result.locator("tr[data-sample]").evaluate_all("rows => rows.map(row => row.dataset.sample)")
    assert samples == [case["case"] for case in run.results]
    assert result.locator("tr[data-status='201']").count() > 0
    assert "Patient/" in result.inner_text()
    browser.screenshot("connections-test-run-pushed", full_page=True)

    viewer = open_browser("vic")
    viewer.open("/connections/")
    assert viewer.page.locator("#run-push-form, #push-form").count() == 0
