"""Browser tests: the accessibility checks' figures at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.e2e.axe import SUMMARY, TAGS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY.checked:
        terminalreporter.write_line(
            f"[axe] {len(SUMMARY.checked)} page(s) checked ({', '.join(TAGS)}) in {SUMMARY.seconds:.1f} s: {'; '.join(SUMMARY.checked)}"
        )
