"""Every action the code records has a readable label (relais/audit/labels.py), in English and French.

Actions are read from the source: the ``action=`` of every audit_record call (AuditBuffer.add and the batch matcher's
``audit`` callback too) and every ``action = "..."`` assignment.
An action built at run time (an f-string) must be listed in DYNAMIC with the values it takes; a new one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from django.utils import translation

from relais.audit.labels import ACTION_LABELS, action_label

RELAIS = Path(__file__).resolve().parents[2] / "relais"

# f-string actions and the values their placeholder takes (purpose=..., kind=..., LinkUnusable reasons).
DYNAMIC: dict[str, set[str]] = {
    "f'patient.{purpose}'": {"view", "view_contact", "view_for_screening", "review", "api_read", "export"},
    "f'screening.{purpose}'": {"view", "pdf", "api_read"},
    "f'result.patient_{purpose}'": {"view", "pdf"},
    "f'submission.{kind}'": {"batch", "csv"},
    "f'result_link.open_{refused.reason}'": {"unknown", "locked", "replaced", "expired"},
}


# audit_record, an AuditBuffer's add, and the ``audit`` callback a batch's patient matching is given.
AUDIT_CALLS = ("audit_record", "add", "audit")


def _source_actions() -> tuple[set[str], set[str], set[str]]:
    """(literal actions, f-string actions as written, every string passed as purpose=...)."""
    literal: set[str] = set()
    dynamic: set[str] = set()
    purposes: set[str] = set()
    for path in RELAIS.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                for keyword in node.keywords:
                    if keyword.arg == "purpose" and isinstance(keyword.value, ast.Constant):
                        purposes.add(str(keyword.value.value))
                    if name in AUDIT_CALLS and keyword.arg == "action":
                        values.append(keyword.value)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "action" for t in node.targets):
                values.append(node.value)
            for value in values:
                for option in (value.body, value.orelse) if isinstance(value, ast.IfExp) else (value,):
                    if isinstance(option, ast.Constant) and isinstance(option.value, str) and "." in option.value:
                        literal.add(option.value)
                    elif isinstance(option, ast.JoinedStr):
                        dynamic.add(ast.unparse(option))
    return literal, dynamic, purposes


def _expanded(pattern: str, values: set[str]) -> set[str]:
    tree = ast.parse(pattern, mode="eval").body
    assert isinstance(tree, ast.JoinedStr)
    prefix = "".join(str(p.value) for p in tree.values[:1] if isinstance(p, ast.Constant))
    suffix = "".join(str(p.value) for p in tree.values[2:] if isinstance(p, ast.Constant))
    return {f"{prefix}{v}{suffix}" for v in values}


def test_the_scan_finds_the_actions_it_should() -> None:
    literal, dynamic, purposes = _source_actions()
    assert {"patient.create", "screening.create", "result_link.wrong_birth_date", "breach.letter_failed"} <= literal
    assert "f'patient.{purpose}'" in dynamic and {"view", "pdf"} <= purposes


def test_every_recorded_action_has_a_label() -> None:
    literal, dynamic, purposes = _source_actions()
    unknown = sorted(dynamic - set(DYNAMIC))
    assert not unknown, f"actions built at run time, add them to DYNAMIC with their values: {unknown}"
    covered = set().union(*(values for pattern, values in DYNAMIC.items() if "{purpose}" in pattern))
    assert purposes <= covered, f"purpose values no DYNAMIC entry lists: {sorted(purposes - covered)}"
    actions = literal | set().union(*(_expanded(p, v) for p, v in DYNAMIC.items()))
    missing = sorted(a for a in actions if a not in ACTION_LABELS)
    assert not missing, f"actions without a label in relais/audit/labels.py: {missing}"


def test_labels_read_in_french_and_english() -> None:
    with translation.override("en"):
        english = {code: action_label(code) for code in ACTION_LABELS}
    with translation.override("fr"):
        assert action_label("patient.view") == "a consulté la fiche patient"
        untranslated = sorted(code for code in ACTION_LABELS if action_label(code) == english[code])
    assert not untranslated, f"labels without a French translation: {untranslated}"
    with translation.override("en"):
        assert action_label("patient.view") == "viewed the patient record"
    assert action_label("no.such_action") == "no.such_action"
