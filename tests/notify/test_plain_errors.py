"""Why a patient message failed, in plain words on the pharmacist's page (issue 15, item 8): every text the channels
and the worker write has a sentence, in French and English; the raw text stays in a details block."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from relais.notify import plain
from relais.notify.models import Notification, NotificationStatus
from relais.notify.services import IN_DOUBT

NOTIFY = Path(plain.__file__).resolve().parent


def _sample(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)]
    return []


def written_errors() -> list[tuple[str, str]]:
    """(text, where) for the literal first argument of every SendOutcome.retry/failed in the notify package, and the
    f-strings assigned to ``detail`` (the SMS gateway's refusal)."""
    found = [(IN_DOUBT, "services.py IN_DOUBT")]
    for path in (NOTIFY / "channels.py", NOTIFY / "services.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"retry", "failed"} and node.args:
                found += [(t, where) for t in _sample(node.args[0])]
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "detail" for t in node.targets):
                found += [(t, where) for t in _sample(node.value)]
    return found


def test_the_scan_finds_the_texts() -> None:
    texts = {t for t, _where in written_errors()}
    assert any(t.startswith("SMS gateway answered") for t in texts) and any(t.startswith("mail server unreachable") for t in texts)
    assert len(texts) >= 6


@pytest.mark.parametrize(("text", "where"), written_errors())
def test_every_failure_text_has_a_sentence(text: str, where: str) -> None:
    assert plain.kind_of(text).code != "unknown", f"{where}: {text!r} has no sentence in relais/notify/plain.py"


@pytest.mark.parametrize("kind", [*plain.KINDS, plain.UNKNOWN], ids=lambda k: k.code)
def test_sentences_in_french_and_english(kind: plain.NotifyErrorKind) -> None:
    with translation.override("en"):
        english = str(kind.sentence)
    with translation.override("fr"):
        french = str(kind.sentence)
    assert english != french


def test_kinds_of_gateway_answers() -> None:
    assert plain.kind_of("SMS gateway answered 429: slow down").code == "sms_busy"
    assert plain.kind_of("SMS gateway answered 400: invalid number").code == "sms_refused"
    assert plain.kind_of("mail server answered 451").code == "mail_deferred"
    assert plain.kind_of("mail server answered 550").code == "mail_refused"


def test_the_pharmacist_reads_why_in_french(as_user: Any, owner: Any, screening: Any) -> None:
    Notification.objects.filter(screening=screening).update(
        status=NotificationStatus.FAILED, last_error="SMS gateway answered 400: invalid number"
    )
    page = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Le fournisseur de SMS a refusé le message, souvent à cause d&#x27;un numéro erroné." in page
    assert "<code>SMS gateway answered 400: invalid number</code>" in page  # kept, in the details
