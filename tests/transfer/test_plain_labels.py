"""Labelled values rather than codes where a person reads them (issue 15, item 8): sex shows "Féminin"/"Female",
never "F"; no template prints a raw code of sex, specimen, result or status."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.urls import reverse

from relais.patients.models import Patient

TEMPLATES = Path(__file__).resolve().parents[2] / "relais" / "templates"


def test_patient_page_shows_the_sex_label(as_user: Any, owner: Any, patient: Any) -> None:
    url = reverse("patients:detail", args=[patient.pk])
    french = as_user(owner).get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    english = as_user(owner).get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="patient-sex">Féminin<' in french
    assert 'data-testid="patient-sex">Female<' in english


def test_an_unknown_code_is_shown_as_it_is(patient: Any) -> None:
    patient.sex = "X"
    assert Patient.get_sex_display(patient) == "X"


def test_no_template_prints_a_raw_code() -> None:
    raw = re.compile(r"{{\s*[\w.]*\.(sex|specimen_type|result|status|symptoms)\s*(\|[^}]*)?}}")
    found = []
    for path in TEMPLATES.rglob("*.html"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in raw.finditer(line):
                # A code in a class or data attribute styles the element; only text a person reads counts.
                before = line[: match.start()]
                if re.search(r'(class|data-[\w-]+)="[^"]*$', before):
                    continue
                found.append(f"{path.relative_to(TEMPLATES)}:{number}: {match.group(0)}")
    assert not found, found
