"""The Batches pages in Chromium, with a real Celery worker: an author starts a batch over two uploaded HL7 files from
the list page, watches the progress bar fill up to done, finds the broken message in the dead-letter list with its
FS code and template line, and downloads the results; a viewer sees the batch but no Start, Cancel or Reprocess; an
author cancels a batch that no worker has taken yet, after a confirmation that can be declined."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from mappings.jobs import batches
from mappings.jobs.chunks import claim_chunk
from mappings.models import BatchChunk, BatchJob
from tests.conftest import worker_database_url
from tests.tasks.conftest import running_worker
from tests.ui.conftest import ARTIFACTS

FIVE_MESSAGES = settings.FHIR_STUDIO["CORPUS_DIR"] / "more/hl7v2/cdc-oru-r01-v2.5.1-five-messages-one-file.hl7"
BROKEN = b"MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|BROKEN-1|P|2.5.1\rPID|1||123^^^HOSP^MR||Doe^Jane\r"


@pytest.fixture
def jobs(settings, tmp_path) -> Path:
    """This test's own jobs directory, where the live server writes the uploads."""
    jobs = tmp_path / "jobs"
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(jobs), "allow_overwrite": True},
        },
    }
    return jobs


@pytest.fixture
def worker(studio, jobs, tmp_path):
    """A worker sharing this test's jobs directory (the live server writes the uploads, the worker the results)."""
    env = {
        "DATABASE_URL": worker_database_url(),
        "FHIR_STUDIO_JOB_FILES_DIR": str(jobs),
        "FHIR_STUDIO_BATCH_CHUNK_MESSAGES": "2",  # three chunks: the bar moves in steps
    }
    with running_worker(tmp_path / "worker.log", env) as running:
        yield running


def test_it_starts_a_batch_and_shows_its_progress_and_dead_letters(open_browser, worker, tmp_path) -> None:
    feed = tmp_path / "feed.hl7"
    feed.write_bytes(BROKEN)
    browser = open_browser("ana")
    page = browser.page
    browser.open("/batches/")
    assert page.locator("#batches tbody").inner_text() == "No batch yet."
    start_from_the_list_page(page, FIVE_MESSAGES, feed)
    bar = page.locator("#progress")
    bar.and_(page.locator("[data-done=true]")).wait_for(timeout=45_000)
    assert (bar.get_attribute("aria-valuenow"), bar.get_attribute("aria-valuemax")) == ("6", "6")
    assert page.locator("#status").inner_text() == "completed"
    assert page.locator("#figure-done").inner_text() == "5 converted"
    assert page.locator("#figure-failed").inner_text() == "1 failed"

    row = page.locator("#failures tbody tr[data-code='FS-RND-005']")
    row.wait_for()
    assert "BROKEN-1" in row.inner_text() and "feed.hl7 line 1" in row.inner_text()
    assert "no OBR or OBX segment" in row.inner_text()
    link = row.locator("a", has_text="template.j2:8")
    assert link.get_attribute("href") == "/mappings/hl7v2-oru-r01/"
    assert not page.locator("#cancel").is_visible()  # finished: nothing to cancel
    assert page.locator("#reprocess-form").is_visible()  # one failed: it can run again
    batch = BatchJob.objects.order_by("pk").first()
    assert page.locator("#download-ndjson").get_attribute("href") == f"/api/batches/{batch.pk}/results?format=ndjson"
    with page.expect_download() as download:
        page.click("#download-bundles")
    assert len(Path(download.value.path()).read_bytes().splitlines()) == 5
    browser.screenshot("batches-detail")

    page.select_option("#reprocess-version", "1")
    page.click("#reprocess-form button[type=submit]")
    page.wait_for_url(f"**/batches/{batch.pk + 1}/")
    page.locator("#status", has_text="completed").wait_for(timeout=30_000)
    assert (
        page.locator("#summary")
        .inner_text()
        .endswith(f"reprocessing the failed messages of batch {batch.pk} · started by ana")
    )
    again = page.locator("#failures tbody tr[data-code='FS-RND-005']")
    again.first.wait_for()  # the dead-letter list loads after the status it follows
    assert again.count() == 1  # the same version fails again

    viewer = open_browser("vic")
    viewer.open(f"/batches/{batch.pk}/")
    assert viewer.page.locator("#status").inner_text() == "completed"
    assert viewer.page.locator("#cancel, #reprocess-form, #start-open").count() == 0
    viewer.open("/batches/")
    listed = viewer.page.locator(f"#batches tr[data-batch='{batch.pk}']")
    assert "completed" in listed.inner_text() and "6 of 6 messages" in listed.inner_text()
    viewer.screenshot("batches-list")
    assert ARTIFACTS.joinpath("batches-detail.png").exists()


def start_from_the_list_page(page, *files: Path) -> None:
    page.click("#start-open")
    page.select_option("#start-mapping", "hl7v2-oru-r01")
    page.wait_for_selector("#start-version option[value='1']", state="attached")
    page.set_input_files("#start-file-input", [str(file) for file in files])
    page.click("#start-submit")
    page.wait_for_url("**/batches/*/")
    page.wait_for_selector("body[data-ready]", state="attached")


def test_it_cancels_a_batch_after_asking(open_browser, jobs) -> None:
    """No worker runs here, so the batch stays queued until the author cancels it."""
    browser = open_browser("ana")
    page = browser.page
    browser.open("/batches/")
    start_from_the_list_page(page, FIVE_MESSAGES)
    assert page.locator("#status").inner_text() == "queued"
    cancel = page.locator("#cancel")
    assert cancel.is_visible()

    cancel.click()  # asked first; declining keeps the batch as it was
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for()
    assert dialog.locator("#confirm-title").inner_text().startswith("Cancel batch ")
    page.click("#confirm-cancel")
    assert not dialog.is_visible()
    assert BatchJob.objects.get().status == "queued"
    assert page.locator("#status").inner_text() == "queued"

    cancel.click()
    page.click("#confirm-ok")
    page.locator("#status", has_text="cancelled").wait_for()
    assert BatchJob.objects.get().status == "cancelled"
    assert not cancel.is_visible()  # nothing left to cancel
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.locator("#status").inner_text() == "cancelled"
    assert not page.locator("#cancel").is_visible()


def test_it_shows_a_dead_letter_counted_before_its_chunk_had_recorded_it(open_browser, jobs, monkeypatch) -> None:
    """A running chunk shows its counts before it writes its items: the page saw "1 failed" while the dead-letter
    list was still empty, and once the batch ended it must load the list again (CI saw the stale list at b699438)."""
    monkeypatch.setattr(batches, "send_chunks", lambda model, ids: None)  # this test runs the chunk itself
    browser = open_browser("ana")
    page = browser.page
    browser.open("/batches/")
    broken = jobs.parent / "broken.hl7"
    broken.write_bytes(BROKEN)
    start_from_the_list_page(page, broken)
    batch = BatchJob.objects.get()
    assert batches.plan_batch_direct(batch.pk) == 1
    chunk = claim_chunk(BatchChunk, BatchChunk.objects.get(batch=batch).pk)

    batches._show_progress(chunk, 0, 1)  # what a chunk slower than a second writes before its items
    page.locator("#figure-failed", has_text="1 failed").wait_for()
    assert page.locator("#status").inner_text() == "running"
    assert page.locator("#failures tbody").inner_text() == "No message failed."

    batches._run_chunk(chunk)
    batches.finish_if_last(batch.pk)
    page.locator("#status", has_text="completed").wait_for()
    row = page.locator("#failures tbody tr[data-code='FS-RND-005']")
    row.wait_for()
    assert "BROKEN-1" in row.inner_text()
