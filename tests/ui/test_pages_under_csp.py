"""Every studio page works under the Content-Security-Policy (issue 15), in Chromium with the policy enforced: no
inline script, no eval, nothing refused (a refusal is a console error, which fails the test), and each page gets ready.
The other browser tests (tests/ui) open their pages with the policy bypassed, because Playwright's wait_for_function
evaluates its expression as a string, which the policy forbids; this test is the one that keeps it on."""

from __future__ import annotations

import re

import pytest

from mappings.models import Facade, Mapping
from tests.ui.conftest import PASSWORD, make_user

pytestmark = pytest.mark.timeout(180)


def test_it_serves_every_page_under_the_policy_without_a_refusal(chromium, studio, in_flight) -> None:
    admin = make_user("ada", "admin")
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    mapping = Mapping.objects.order_by("slug").first()
    facade = Facade.objects.get(slug="demo")
    pages = [
        "/",
        f"/mappings/{mapping.slug}/",
        f"/mappings/{mapping.slug}/history",
        "/facades/",
        f"/facades/{facade.slug}/",
        "/batches/",
        "/messages/",
        "/connections/",
        "/profiles/",
        "/library/snippets/",
        "/library/lookup-tables/",
        "/audit/",
        "/api/docs/",
    ]
    # A context of our own with the policy enforced (bypass_csp off, which tests/ui's pages turn on)
    context = chromium.new_context(base_url=studio["url"], bypass_csp=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.goto("/login/")  # the login page is checked too
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    try:
        for path in pages:
            response = page.goto(path)
            assert "script-src 'self'" in response.headers["content-security-policy"], path
            page.wait_for_selector("body[data-ready]", state="attached")
        for path in ("/admin/", "/admin/mappings/datasource/add/"):
            response = page.goto(path)
            assert response.status == 200 and "content-security-policy" in response.headers, path
            page.wait_for_load_state("load")
        # A script put into a page (as an injection would) is refused: the policy is enforced, not just sent
        page.goto("/")
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
            " document.body.append(s); }"
        )
        assert page.evaluate("() => window.ran") is None
        assert any("inline script" in text for text in errors), errors
    finally:
        context.close()  # the admin asks for /favicon.ico, a 404 Chromium logs as an error
        assert in_flight.wait_until_idle()
    assert not [text for text in errors if "inline script" not in text and "404 (Not Found)" not in text], errors
