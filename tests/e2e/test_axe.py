"""The accessibility check itself: it names each violation (rule, impact, element, help page) and passes a clean page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.e2e.axe import assert_accessible, page_kind
from tests.e2e.test_journey import browser, pytestmark  # noqa: F401

HEAD = "<!doctype html><html{lang}><head><title>t</title></head><body><main><h1>x</h1>"
BAD = HEAD.format(lang="") + '<img src="x.png"><p style="color:#999;background:#fff">faint</p></main></body></html>'
GOOD = HEAD.format(lang=' lang="fr"') + '<img src="x.png" alt="logo"><p>ok</p></main></body></html>'


def test_violations_are_listed_and_a_clean_page_passes(browser: Browser) -> None:  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    page.set_content(BAD)
    with pytest.raises(AssertionError) as failed:
        assert_accessible(page, name="bad")
    report = str(failed.value)
    for rule in ("image-alt (critical)", "html-has-lang (serious)", "color-contrast (serious)"):
        assert rule in report, report
    assert "https://dequeuniversity.com/rules/axe/" in report and "img" in report
    page.set_content(GOOD)
    assert_accessible(page, name="good")
    context.close()


def test_page_kind_masks_ids_and_tokens() -> None:
    assert page_kind("http://h/patients/0192b2c4-1f2e-7a3b-8c4d-5e6f7a8b9c0d/record/?x=1") == "/patients/…/record/"
    assert page_kind("http://h/invite/AbCdEfGhIjKlMnOpQrStUvWx:1tXyZ:abc123/") == "/invite/…/"
    assert page_kind("http://h/imports/42/") == "/imports/…/"
    assert page_kind("http://h/pre/done/") == "/pre/done/"
