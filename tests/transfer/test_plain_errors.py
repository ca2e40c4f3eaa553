"""Transport and receiver errors in plain words (issue 15, item 8): every error text the transfer code can write has a
kind with a sentence, in French and English; the raw text stays for operators and in the pharmacist's details."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from relais.core.queue import error_summary
from relais.transfer import plain
from relais.transfer.models import OutboxMessage
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record

TRANSFER = Path(plain.__file__).resolve().parent
FALLBACKS = {"unknown", "refused"}  # for texts Relais does not write itself (a receiver's words, an old row)


def _sample(node: ast.expr) -> list[str]:
    """Texts a literal argument can produce: constants as they are, f-strings with "0" for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)]
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _sample(value)]
    if isinstance(node, ast.Subscript):  # f"..."[:500]
        return _sample(node.value)
    if isinstance(node, ast.IfExp):
        return _sample(node.body) + _sample(node.orelse)
    return []


def written_errors() -> list[tuple[str, bool, str]]:
    """(text, refused?, where) for every error text the transfer package writes: TransientError and
    Outcome.transient/rejected arguments, the transports' timeout reasons, rejection_reason and last_error values."""
    found: list[tuple[str, bool, str]] = []
    for path in sorted(TRANSFER.rglob("*.py")):
        if "migrations" in path.parts or path.name == "plain.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(TRANSFER)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in {"TransientError", "transient", "rejected"} and node.args:
                    found += [(t, name == "rejected", where) for t in _sample(node.args[0])]
                for keyword in node.keywords:
                    if keyword.arg in {"idle_reason", "last_error", "rejection_reason"}:
                        found += [(t, keyword.arg == "rejection_reason", where) for t in _sample(keyword.value)]
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in {"rejection_reason", "last_error"}:
                        found += [(t, key.value == "rejection_reason", where) for t in _sample(value)]
            elif isinstance(node, ast.FunctionDef) and node.name == "timeout_reason":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Return) and inner.value is not None:
                        found += [(t, False, where) for t in _sample(inner.value)]
    return [(text, refused, where) for text, refused, where in found if text.strip()]


def test_the_scan_finds_the_error_texts() -> None:
    texts = {text for text, _refused, _where in written_errors()}
    # A few anchors: the scan must keep seeing the transports, the reply readers and the services.
    assert "connection closed without an acknowledgement" in texts
    assert "malformed answer: not JSON" in texts
    assert any(t.startswith("cannot connect to ") for t in texts)
    assert any(t.startswith("gave up after errors") for t in texts)
    assert any(t.startswith("no complete acknowledgement within") for t in texts)
    assert len(texts) >= 20


@pytest.mark.parametrize(("text", "refused", "where"), written_errors())
def test_every_error_relais_writes_has_its_own_sentence(text: str, refused: bool, where: str) -> None:
    kind = plain.kind_of(text, refused=refused)
    assert kind.code not in FALLBACKS, f"{where}: {text!r} has no plain sentence in relais/transfer/plain.py"


def test_unexpected_errors_of_the_worker_have_a_sentence() -> None:
    try:
        raise KeyError("secret")
    except KeyError as exc:
        summary = error_summary(exc)
    assert plain.kind_of(summary).code == "unexpected"
    assert plain.kind_of(f"gave up after errors: {summary}", refused=True).code == "gave_up"
    assert plain.kind_of("exchange deadline passed").code == "no_answer"


@pytest.mark.parametrize("kind", list(plain.KINDS.values()), ids=lambda k: k.code)
def test_every_sentence_is_in_french_and_english(kind: plain.ErrorKind) -> None:
    with translation.override("en"):
        english = str(kind.sentence)
    with translation.override("fr"):
        french = str(kind.sentence)
    assert english and french and english != french, f"{kind.code} has no French translation"


def test_receiver_reasons_are_sorted() -> None:
    assert plain.kind_of("INS non qualifiée", refused=True).code == "identity"
    assert plain.kind_of("HTTP 422: Patient.birthDate invalide", refused=True).code == "identity"
    assert plain.kind_of("HTTP 400: no reason given", refused=True).code == "http_refused"
    assert plain.kind_of("rejected (AR)", refused=True).code == "refused_no_reason"
    assert plain.kind_of("rejected by sandbox: reject mode", refused=True).code == "refused"
    assert plain.kind_of("receiver answered 503").outage
    assert not plain.kind_of("malformed answer: not JSON").outage
    unknown = plain.explain("something nobody wrote")
    assert unknown is not None and unknown.code == "unknown" and unknown.raw == "something nobody wrote"
    assert plain.explain("") is None


def _claimed(screening: Any) -> OutboxMessage:
    message = outbox_claim(owner="a", limit=1)[0]
    message.destination = "sandbox-mllp-hl7v2"
    return message


def test_the_pharmacist_reads_the_problem_in_french_with_the_raw_text_in_details(as_user: Any, owner: Any, screening: Any) -> None:
    message = _claimed(screening)
    outbox_record(owner="a", outcomes={message: Outcome.transient("malformed answer: not JSON", transmitted=True)})
    page = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "La réponse de la plateforme nationale était illisible. Relais renvoie le résultat automatiquement ; rien à faire." in page
    assert "Détails techniques" in page and 'data-testid="transfer-problem-raw">malformed answer: not JSON<' in page
    english = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The national platform&#x27;s answer could not be read." in english
    # The today list's status badge carries the sentence too, never the raw English text.
    today = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "malformed answer" not in today


def test_a_refusal_naming_the_identity_says_so_in_plain_words(as_user: Any, owner: Any, screening: Any) -> None:
    message = _claimed(screening)
    outbox_record(owner="a", outcomes={message: Outcome.rejected("INS non qualifiée", ack_code="AE")})
    page = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert (
        "La plateforme a refusé le résultat : l&#x27;identité du patient n&#x27;est pas qualifiée (INS). Corrigez l&#x27;identité." in page
    )
    assert 'data-kind="identity"' in page and 'data-testid="rejection-reason">INS non qualifiée<' in page
    assert 'data-testid="correct-identity"' in page


def test_operators_see_the_raw_text_beside_the_sentence(as_user: Any, operator: Any, screening: Any) -> None:
    message = _claimed(screening)
    outbox_record(owner="a", outcomes={message: Outcome.rejected("HTTP 400: bad segment", ack_code="400")})
    page = as_user(operator).get("/operator/transfer/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "HTTP 400: bad segment" in page
    assert "The national platform refused the result. Check the test and the patient&#x27;s details" in page
