"""Accessibility checks for the browser journeys: axe-core (bundled by the pinned axe-playwright-python, no network).

Rules: WCAG 2.0/2.1 levels A and AA, plus axe's best practices. The script is evaluated through the DevTools protocol,
which the pages' Content-Security-Policy (script-src 'self') does not govern, so the app's CSP stays as it is.
``check_page`` runs once per page kind (path with ids and tokens masked, plus an optional state such as "errors") per
test run; ``SUMMARY`` counts the pages and the seconds spent, printed at the end of the run by tests/e2e/conftest.py."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Page

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]+|[A-Za-z0-9_-]{20,}(?::[A-Za-z0-9_:-]+)?)(?=/|$)")


@dataclass
class Summary:
    checked: list[str] = field(default_factory=list)
    seconds: float = 0.0


SUMMARY = Summary()


def page_kind(url: str) -> str:
    """The path with UUIDs, numbers and tokens replaced: one check per kind of page, whoever's page it is."""
    return _ID.sub("/…", urlsplit(url).path)


def violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", TAGS)
    return list(result["violations"])


def assert_accessible(page: Page, *, name: str) -> None:
    """Fail with every axe violation on the page as it is now: rule, impact, elements, help page."""
    found = violations(page)
    if not found:
        return
    lines = [f"{len(found)} accessibility rule(s) violated on {name} ({page.url}):"]
    for v in found:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} — {v['helpUrl']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node.get('failureSummary', '').splitlines()[-1].strip()}")
    raise AssertionError("\n".join(lines))


def check_page(page: Page, *, state: str = "") -> None:
    """assert_accessible, once per kind of page (and state) in the whole run."""
    kind = page_kind(page.url) + (f" ({state})" if state else "")
    if kind in SUMMARY.checked:
        return
    page.wait_for_load_state("load")
    tick = time.perf_counter()
    try:
        assert_accessible(page, name=kind)
    finally:
        SUMMARY.checked.append(kind)
        SUMMARY.seconds += time.perf_counter() - tick
