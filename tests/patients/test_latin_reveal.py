"""Issue 16, item 5: the "in Latin letters" fields are on the patient form always, inside a `hidden` block while the
name does not need them; the name inputs carry the rule as data for static/latin-reveal.js. Without JavaScript the
server shows them after a submit, as before (tests/patients/test_identity_reliability.py)."""

from __future__ import annotations

import re
from typing import Any

from relais.certificates import icao_coverage_data
from relais.certificates.icao_coverage import regex_class
from tests.patients.test_identity_reliability import _register


def _latin_block(page: str, name: str) -> str:
    match = re.search(r'<div class="field[^"]*"( hidden)?>\s*<label for="id_' + name, page)
    assert match, f"{name} not rendered"
    return match.group(0)


def test_the_form_carries_the_rule_and_hides_the_fields_until_needed(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    page = client.get("/patients/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert " hidden>" in _latin_block(page, "latin_last_name") and " hidden>" in _latin_block(page, "latin_first_names")
    assert 'src="/static/latin-reveal.js"' in page and "<script>" not in page  # a static file, no inline script (CSP)
    last_name = re.search(r'<input[^>]*name="last_name"[^>]*>', page)
    assert last_name is not None
    tag = last_name.group(0)
    uncovered = regex_class(icao_coverage_data.UNCOVERED)
    assert f'data-latin-uncovered="{uncovered}"' in tag and "data-latin-source" in tag
    assert f'data-latin-producing="{regex_class(icao_coverage_data.PRODUCING)}"' in tag and "data-latin-blank=" in tag
    assert re.search(r'<input[^>]*name="first_names"[^>]*data-latin-source', page)


def test_after_a_submit_the_server_shows_them(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    page = _register(client, last_name="王", first_names="小明").content.decode()
    assert " hidden>" not in _latin_block(page, "latin_last_name")
    # a Latin name with a Latin spelling given keeps them shown (what it was given stays visible)
    page = _register(client, last_name="Dupont", first_names="Anne", latin_last_name="DUPONT", sex="X").content.decode()
    assert " hidden>" not in _latin_block(page, "latin_last_name")


def test_the_correction_form_too(as_user: Any, owner: Any, patient: Any) -> None:
    page = as_user(owner).get(f"/patients/{patient.pk}/identity/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert " hidden>" in _latin_block(page, "latin_last_name") and 'src="/static/latin-reveal.js"' in page
