"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium; nothing is downloaded) against pytest-django's
live server, on the real database (PostgreSQL in CI). Every test fails on a console error it did not expect, and
screenshots land in test-artifacts/ui/ to be looked at."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.signals import request_finished, request_started

from mappings import caches
from mappings.demo import load_demo
from mappings.facade import request_log

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("FHIR_STUDIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
PASSWORD = "pw-browser"


@pytest.fixture(scope="session", autouse=True)
def _no_delayed_acks():
    """The live server (Django's wsgiref server) writes headers and body in two sends; with Nagle's algorithm on, each
    response then waits ~40 ms for the browser's delayed ACK. gunicorn, which ./scripts/run uses, sets TCP_NODELAY;
    do the same here so the latency the tests record is the studio's, not the test server's."""
    from django.core.servers.basehttp import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True  # socketserver's own switch: TCP_NODELAY on each connection
    yield
    WSGIRequestHandler.disable_nagle_algorithm = False


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium (scripts/test does it as root).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def make_user(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=role == "admin")
    group, _ = Group.objects.get_or_create(name=role)  # a transactional test's flush removes migration-made groups
    user.groups.add(group)
    return user


@pytest.fixture
def studio(transactional_db, live_server) -> dict:
    """The live server with an author and a viewer, and the demo content (published v1 of each example)."""
    caches.clear()
    request_log.discard()
    author = make_user("ana", "author")
    viewer = make_user("vic", "viewer")
    load_demo(author)
    return {"url": live_server.url, "author": author, "viewer": viewer}


class BrowserPage:
    """One browser context (its own cookies and storage) logged in as a user, collecting console errors."""

    def __init__(self, browser, base_url: str, username: str) -> None:
        self.base_url = base_url
        # The Content-Security-Policy forbids eval, which Playwright's wait_for_function uses for its expression:
        # bypassed here; tests/security/test_headers_pages.py opens every page with the policy enforced.
        self.context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base_url, bypass_csp=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.console_errors: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        self.page.goto("/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/$"))

    def allow_console_error(self, pattern: str) -> None:
        """A failed request the test provokes on purpose (a 412) is logged by Chromium as a console error."""
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [text for text in self.console_errors if not any(pattern.search(text) for pattern in self.allowed)]

    def open(self, path: str, ready: str = "body[data-ready]") -> None:
        self.page.goto(path)
        self.page.wait_for_selector(ready, state="attached")

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        self.context.close()


class InFlightRequests:
    """Counts the live server's requests still being answered. A closed browser page can leave one running (a test
    run the editor started); the test's database flush must wait for it, or the flush and that request's writes
    deadlock and the next test starts on an unflushed database."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def started(self, **kwargs) -> None:
        with self.changed:
            self.count += 1

    def finished(self, **kwargs) -> None:
        with self.changed:
            self.count = max(0, self.count - 1)
            self.changed.notify_all()

    def wait_until_idle(self, seconds: float = 30) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count == 0, timeout=seconds)


@pytest.fixture
def in_flight() -> Iterator[InFlightRequests]:
    counter = InFlightRequests()
    request_started.connect(counter.started, weak=False)
    request_finished.connect(counter.finished, weak=False)
    yield counter
    request_started.disconnect(counter.started)
    request_finished.disconnect(counter.finished)


@pytest.fixture
def open_browser(chromium, studio, in_flight) -> Iterator:
    """open_browser("ana") → a BrowserPage logged in as that user; each fails its test on unexpected console errors."""
    opened: list[BrowserPage] = []

    def open_(username: str = "ana") -> BrowserPage:
        browser_page = BrowserPage(chromium, studio["url"], username)
        opened.append(browser_page)
        return browser_page

    yield open_
    errors = {page.base_url + str(index): page.unexpected_errors() for index, page in enumerate(opened)}
    for page in opened:
        page.close()
    assert in_flight.wait_until_idle(), "the live server was still answering a request 30 s after the pages closed"
    assert not any(errors.values()), f"console errors: {errors}"
