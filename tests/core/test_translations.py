"""The French catalog is complete and consistent, and the UI follows the browser's language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polib
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from relais.core.compile_messages import compile_all

LOCALE_DIR = Path(django_settings.BASE_DIR) / "relais" / "locale"
FR_PO = LOCALE_DIR / "fr" / "LC_MESSAGES" / "django.po"
# %(name)s, %s, %d… (a literal "%%" is matched too, so it must be kept as well).
PLACEHOLDER = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc%]")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def catalog() -> polib.POFile:
    return polib.pofile(str(FR_PO))


def live_entries(po: polib.POFile) -> list[polib.POEntry]:
    return [entry for entry in po if not entry.obsolete]


def test_catalog_is_french(catalog: polib.POFile) -> None:
    assert catalog.metadata.get("Language") == "fr"
    assert not catalog.metadata_is_fuzzy, "remove '#, fuzzy' from the header"
    assert len(live_entries(catalog)) > 100


def test_every_entry_is_translated(catalog: polib.POFile) -> None:
    untranslated = [entry.msgid for entry in catalog.untranslated_entries()]
    assert untranslated == [], f"untranslated: {untranslated}"


def test_no_entry_is_fuzzy(catalog: polib.POFile) -> None:
    fuzzy = [entry.msgid for entry in catalog.fuzzy_entries()]
    assert fuzzy == [], f"fuzzy: {fuzzy}"


def test_placeholders_match(catalog: polib.POFile) -> None:
    mismatches = []
    for entry in live_entries(catalog):
        if entry.msgid_plural:
            expected = placeholders(entry.msgid_plural)
            translations = list(entry.msgstr_plural.values())
        else:
            expected = placeholders(entry.msgid)
            translations = [entry.msgstr]
        mismatches += [(entry.msgid, text) for text in translations if placeholders(text) != expected]
    assert mismatches == [], f"placeholders differ: {mismatches}"


@pytest.fixture
def compiled_locale(settings: Any) -> Iterator[None]:
    """django.mo is git-ignored: build it, then make Django reload its catalogs."""
    compile_all(LOCALE_DIR)
    settings.LOCALE_PATHS = list(settings.LOCALE_PATHS)  # setting_changed resets the translation caches
    yield


@pytest.mark.django_db
@pytest.mark.usefixtures("compiled_locale")
def test_login_page_in_french(client: Client) -> None:
    response = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert "<h1>Connexion</h1>" in html
    assert "Continuer" in html
    assert "Les comptes sont créés uniquement sur invitation." in html
    assert "Log in" not in html


@pytest.mark.django_db
@pytest.mark.usefixtures("compiled_locale")
def test_login_page_in_english(client: Client) -> None:
    response = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "<h1>Log in</h1>" in html
    assert "Continue" in html
    assert "Accounts are created by invitation only." in html
    assert "Connexion" not in html
