"""The pagers of the batch list, a batch's failed and pushed messages and the message log in Chromium (one module,
static/src/lib/pager.js, serves every list page), and the batch list's push sums: a batch started with push_to shows
its connection and "pushed N, refused M"; a batch without push_to shows neither."""

from __future__ import annotations

import io

import pytest

from mappings import actions
from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.models import BatchChunk, Mapping
from mappings.ui import messages as message_views
from mappings.ui import views
from tests.tasks.test_batch_push import adt
from tests.ui.test_batch_push_page import target  # noqa: F401 (a fixture: the connection `target` to a store)

pytestmark = pytest.mark.timeout(150)


def run_batch(studio, feed: list[bytes], push: bool) -> int:
    """A batch of ADT messages run here as workers would, pushed as transactions to `target` when `push`."""
    version = Mapping.objects.get(slug="hl7v2-adt-a01").latest_version
    batch = actions.do_start_batch(
        version,
        acting_user=studio["author"],
        uploads=[("adt.hl7", io.BytesIO(b"\r\n".join(feed) + b"\r\n"))],
        push_to={"connection": "target", "kind": "transaction"} if push else None,
    )
    plan_batch_direct(batch.pk)
    for chunk_id in BatchChunk.objects.filter(batch_id=batch.pk).values_list("pk", flat=True):
        run_batch_chunk_direct(chunk_id)
    return batch.pk


def place(page, selector: str, text: str) -> None:
    """Wait until the pager's place says `text` (answers arrive after the click)."""
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).textContent === text", arg=[selector, text]
    )


def test_the_batch_list_pages_and_shows_what_each_push_did(open_browser, studio, target, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(views, "BATCH_PAGE_SIZE", 2)
    plain = run_batch(studio, [adt(60, allergy=False)], push=False)
    older = run_batch(studio, [adt(61, allergy=False)], push=False)
    pushed = run_batch(studio, [adt(62, allergy=False), adt(63, allergy=True), adt(64, allergy=False)], push=True)
    browser = open_browser("vic")
    page = browser.page
    browser.open("/batches/")
    assert page.inner_text("#pages-place") == "Page 1 of 2 · 3 batches"
    assert page.is_disabled("#pages-previous") and not page.is_disabled("#pages-next")
    shown = page.locator("#batches tbody tr").evaluate_all("rows => rows.map(row => Number(row.dataset.batch))")
    assert shown == [pushed, older]
    push = page.locator(f"#batches tr[data-batch='{pushed}'] .batch-push")
    assert push.get_attribute("data-connection") == "target"
    assert push.inner_text() == "→ target · pushed 3, refused 1"
    assert push.locator(".error").inner_text() == "refused 1"  # a refusal stands out
    assert page.locator(f"#batches tr[data-batch='{older}'] .batch-push").count() == 0  # no push_to: no push line
    browser.screenshot("batches-list-push")

    page.click("#pages-next")
    page.wait_for_url("**/batches/?page=2")
    place(page, "#pages-place", "Page 2 of 2 · 3 batches")
    assert page.locator("#batches tbody tr").evaluate_all("rows => rows.map(row => row.dataset.batch)") == [str(plain)]
    assert page.is_disabled("#pages-next") and not page.is_disabled("#pages-previous")
    page.reload()  # the address names the page
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#pages-place") == "Page 2 of 2 · 3 batches"
    page.click("#pages-previous")
    page.wait_for_url("**/batches/")
    place(page, "#pages-place", "Page 1 of 2 · 3 batches")

    browser.allow_console_error("status of 404")
    browser.open("/batches/?page=9")  # past the end (a stale link): the first page
    page.wait_for_url("**/batches/")
    place(page, "#pages-place", "Page 1 of 2 · 3 batches")


def test_a_batchs_failed_messages_page_one_at_a_time(open_browser, studio, target, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(views, "FAILURES_PAGE_SIZE", 1)
    batch = run_batch(studio, [adt(70, allergy=True), adt(71, allergy=False), adt(72, allergy=True)], push=True)
    browser = open_browser("vic")
    page = browser.page
    browser.open(f"/batches/{batch}/")
    page.wait_for_selector("body[data-pushes-shown='3']", state="attached")
    assert page.locator("#pushes-pager").is_hidden()  # three pushed messages fit one page of 20
    place(page, "#failures-place", "Page 1 of 2")
    assert page.is_disabled("#failures-previous") and not page.is_disabled("#failures-next")
    first = page.locator("#failures tbody tr").evaluate_all("rows => rows.map(row => row.innerText)")
    page.click("#failures-next")
    place(page, "#failures-place", "Page 2 of 2")
    second = page.locator("#failures tbody tr").evaluate_all("rows => rows.map(row => row.innerText)")
    assert len(first) == len(second) == 1 and first != second
    assert "PUSH0070" in first[0] + second[0] and "PUSH0072" in first[0] + second[0]
    assert page.is_disabled("#failures-next")


def test_the_message_log_pages_and_keeps_the_page_in_the_address(open_browser, studio, monkeypatch) -> None:
    monkeypatch.setattr(message_views, "MESSAGE_PAGE_SIZE", 2)
    run_batch(studio, [adt(number, allergy=False) for number in (80, 81, 82)], push=False)
    browser = open_browser("vic")
    page = browser.page
    browser.open("/messages/")
    assert page.inner_text("#pages-place") == "Page 1 of 2 · 3 messages"
    assert page.locator("#messages tbody tr[data-message]").count() == 2
    page.click("#pages-next")
    place(page, "#pages-place", "Page 2 of 2 · 3 messages")
    assert "page=2" in page.url
    assert page.locator("#messages tbody tr[data-message]").count() == 1
    assert page.is_disabled("#pages-next") and not page.is_disabled("#pages-previous")
