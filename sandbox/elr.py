"""The HL7 v2.5.1 ELR rules the sandbox enforces on every ORU^R01 it receives, as a strict receiver would: one table.

The rules come from the HL7 v2.5.1 Electronic Laboratory Reporting to Public Health implementation guide (Release 1,
"PHLabReport-NoAck") as issue 16 asks of Relais: identifiers are entity identifiers (EI), hierarchic designators (HD)
and extended composite ids (CX, XCN) that name their assigning authority with an OID ("ISO"); a correction or removal
keeps the placer and filler order numbers of the original and says so in OBX-11 and OBR-25.

``RULES`` lists them in the order they are checked; each has the field it concerns (what a refusal names first), the
requirement in words (docs/sandbox.md and ``GET /control/rules`` show the same text) and its check. ``elr_problem``
runs them on the raw segments of a message that already passed the structural checks (sandbox.hl7.check_message) and
returns the first failure: the message is answered AE with an ERR segment, MSA-3 starting with the field
("OBR-3: ..."), and nothing is stored. ``batch_problem`` does the same for an FHS/BHS envelope.

Only what the rule names is checked: a field the rule says "when present" may be absent. MSH-5/6 (the receiver) take
a bare namespace (SIDEP: SI-DEP's OIDs are not published) or a full HD with an OID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sandbox.hl7 import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    Problem,
    _fields,
)

ELR_PROFILE = ("PHLabReport-NoAck", "ELR251R1_Rcvr_Prof", "2.16.840.1.113883.9.11", "ISO")
RESULT_STATUSES = ("F", "C", "D")
# OBR-25 (order status) for each OBX-11: a removal (D) corrects the order, its results are deleted.
ORDER_STATUS_FOR = {"F": "F", "C": "C", "D": "C"}
_OID = re.compile(r"[012](\.(0|[1-9]\d*))+")


def is_oid(value: str) -> bool:
    return bool(_OID.fullmatch(value))


@dataclass(slots=True)
class Segment:
    name: str
    sequence: int  # 1 for the first segment of this name in the message
    fields: list[str]  # fields[n] is field n (MSH: fields[1] is the separator)

    def field(self, number: int) -> str:
        return self.fields[number] if number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[str]:
        value = self.field(number)
        return value.split("~") if value else []

    def where(self, number: int, repetition: int = 1, component: int | None = None) -> str:
        location = f"{self.name}^{self.sequence}^{number}^{repetition}"
        return location if component is None else f"{location}^{component}"


def _segments(raw: list[str]) -> list[Segment]:
    counts: dict[str, int] = {}
    out = []
    for text in raw:
        name = text[:3]
        counts[name] = counts.get(name, 0) + 1
        out.append(Segment(name, counts[name], _fields(text)))
    return out


def _components(value: str) -> list[str]:
    return value.split("^")


def _part(parts: list[str], index: int) -> str:
    """Component (or subcomponent) ``index`` (1-based), "" when absent."""
    return parts[index - 1] if index <= len(parts) else ""


# -- data type checks: what is wrong with a value, "" when it is right -----------------------------------------------


def _hd_problem(value: str, separator: str = "^", *, name: str = "HD") -> str:
    """An HD naming its authority by OID: HD-2 an OID, HD-3 ISO (HD-1, the namespace, is optional in an HD)."""
    parts = value.split(separator)
    universal, kind = _part(parts, 2), _part(parts, 3)
    if not universal and not kind:
        return f"{name} needs an OID (HD-2) and ISO (HD-3)"
    if not is_oid(universal):
        return f"{name}-2 {universal[:40]!r} is not an OID"
    if kind != "ISO":
        return f"{name}-3 must be ISO, got {kind[:10]!r}"
    return ""


def _ei_problem(value: str, separator: str = "^", *, what: str = "EI") -> str:
    """An EI with all four components: EI-1 the id, EI-2 the namespace, EI-3 an OID, EI-4 ISO."""
    parts = value.split(separator)
    identifier, namespace, universal, kind = (_part(parts, n) for n in (1, 2, 3, 4))
    if not identifier:
        return f"{what} is empty (EI-1)"
    if not universal and not kind:
        return f"{what} needs an assigning authority OID (EI-3) and ISO (EI-4)"
    if not namespace:
        return f"{what} needs a namespace (EI-2)"
    if not is_oid(universal):
        return f"{what}: EI-3 {universal[:40]!r} is not an OID"
    if kind != "ISO":
        return f"{what}: EI-4 must be ISO, got {kind[:10]!r}"
    return ""


# -- the rules ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    field: str  # the field named first in the refusal ("MSH-21")
    requirement: str  # what the rule asks, in words
    check: Callable[[list[Segment]], Problem | None]


def _first(segments: list[Segment], name: str) -> Segment | None:
    return next((s for s in segments if s.name == name), None)


def _each(segments: list[Segment], name: str) -> Iterator[Segment]:
    return (s for s in segments if s.name == name)


def _missing(field: str, what: str, location: str) -> Problem:
    return Problem(f"{field}: {what}", location, REQUIRED_FIELD_MISSING)


def _wrong(field: str, what: str, location: str, code: str = DATA_TYPE_ERROR) -> Problem:
    return Problem(f"{field}: {what}", location, code)


def _msh21(segments: list[Segment]) -> Problem | None:
    msh = segments[0]
    profiles = msh.repetitions(21)
    if not profiles:
        return _missing("MSH-21", "the ELR 2.5.1 profile id " + "^".join(ELR_PROFILE) + " is missing", "MSH^1^21")
    if not any(tuple(_components(profile)) == ELR_PROFILE for profile in profiles):
        return _wrong("MSH-21", "must be the ELR 2.5.1 profile " + "^".join(ELR_PROFILE), "MSH^1^21", TABLE_VALUE_NOT_FOUND)
    return None


def _msh_hd(number: int, what: str) -> Callable[[list[Segment]], Problem | None]:
    def check(segments: list[Segment]) -> Problem | None:
        value = segments[0].field(number)
        if not value:
            return _missing(f"MSH-{number}", f"{what} is missing", f"MSH^1^{number}")
        problem = _hd_problem(value)
        return _wrong(f"MSH-{number}", f"{what} {problem}", f"MSH^1^{number}") if problem else None

    return check


def _msh_receiver(number: int, what: str) -> Callable[[list[Segment]], Problem | None]:
    """MSH-5/6: a bare namespace (SIDEP) or a full HD namespace^OID^ISO."""

    def check(segments: list[Segment]) -> Problem | None:
        value = segments[0].field(number)
        parts = _components(value)
        if not _part(parts, 1):
            return _missing(f"MSH-{number}", f"{what} needs a namespace (HD-1)", f"MSH^1^{number}^1^1")
        if len(parts) > 1 and any(parts[1:]):
            problem = _hd_problem(value)
            if problem:
                return _wrong(f"MSH-{number}", f"{what} {problem}", f"MSH^1^{number}")
        return None

    return check


def _sft(segments: list[Segment]) -> Problem | None:
    if len(segments) < 2 or segments[1].name != "SFT":
        return Problem("SFT: the software segment must follow MSH", "SFT", SEGMENT_SEQUENCE_ERROR)
    return None  # SFT-1..4 are required by v2.5.1 itself: hl7apy and fast_problem check them


def _pid3(segments: list[Segment]) -> Problem | None:
    pid = _first(segments, "PID")
    if pid is None:
        return None  # check_message already refused it
    identifiers = pid.repetitions(3)
    if not identifiers:
        return _missing("PID-3", "the patient identifier list is empty", pid.where(3))
    for repetition, cx in enumerate(identifiers, start=1):
        parts = _components(cx)
        if not _part(parts, 1):
            return _missing("PID-3", f"identifier #{repetition} is empty (CX-1)", pid.where(3, repetition, 1))
        problem = _hd_problem(_part(parts, 4), "&", name="assigning authority (CX-4) HD")
        if problem:
            return _wrong("PID-3", f"identifier #{repetition}: {problem}", pid.where(3, repetition, 4))
        if not _part(parts, 5):
            return _missing("PID-3", f"identifier #{repetition} needs an identifier type code (CX-5)", pid.where(3, repetition, 5))
    return None


def _orders(segments: list[Segment]) -> Iterator[tuple[Segment | None, Segment]]:
    """(the ORC before it or None, OBR) for each OBR."""
    orc: Segment | None = None
    for segment in segments:
        if segment.name == "ORC":
            orc = segment
        elif segment.name == "OBR":
            yield orc, segment
            orc = None


def _order_number(name: str, number: int, what: str) -> Callable[[list[Segment]], Problem | None]:
    def check(segments: list[Segment]) -> Problem | None:
        for orc, obr in _orders(segments):
            segment = orc if name == "ORC" else obr
            if segment is None:
                return Problem("ORC: each OBR needs its common order segment (ORC) before it", "ORC", SEGMENT_SEQUENCE_ERROR)
            value = segment.field(number)
            if not value:
                return _missing(f"{name}-{number}", f"{what} is missing", segment.where(number))
            problem = _ei_problem(value, what=what)
            if problem:
                return _wrong(f"{name}-{number}", problem, segment.where(number))
        return None

    return check


def _same_order_numbers(segments: list[Segment]) -> Problem | None:
    for orc, obr in _orders(segments):
        if orc is None:
            continue
        for number, what in ((3, "filler"), (2, "placer")):
            if orc.field(number) != obr.field(number):
                return _wrong(f"OBR-{number}", f"{what} order number differs from ORC-{number}", obr.where(number), DATA_TYPE_ERROR)
    return None


def _obx11(segments: list[Segment]) -> Problem | None:
    seen = ""
    for obx in _each(segments, "OBX"):
        status = obx.field(11)
        if status not in RESULT_STATUSES:
            return _wrong("OBX-11", f"result status must be F, C or D, got {status[:5]!r}", obx.where(11), TABLE_VALUE_NOT_FOUND)
        if seen and status != seen:
            return _wrong(
                "OBX-11", f"{status} here, {seen} in an earlier OBX: one status per message", obx.where(11), TABLE_VALUE_NOT_FOUND
            )
        seen = seen or status
    return None


def _obr25(segments: list[Segment]) -> Problem | None:
    statuses = [obx.field(11) for obx in _each(segments, "OBX")]
    for obr in _each(segments, "OBR"):
        status = obr.field(25)
        if status not in ("F", "C"):
            return _wrong("OBR-25", f"result status must be F or C, got {status[:5]!r}", obr.where(25), TABLE_VALUE_NOT_FOUND)
        if statuses and status != ORDER_STATUS_FOR.get(statuses[0], ""):
            expected = ORDER_STATUS_FOR.get(statuses[0], "?")
            return _wrong(
                "OBR-25", f"{status} does not match OBX-11 {statuses[0]} (expected {expected})", obr.where(25), TABLE_VALUE_NOT_FOUND
            )
    return None


def _spm2(segments: list[Segment]) -> Problem | None:
    for spm in _each(segments, "SPM"):
        value = spm.field(2)
        if not value or not any(_components(value)):
            return _missing("SPM-2", "the specimen id is missing", spm.where(2))
        parts = _components(value)
        for component, what in ((1, "placer"), (2, "filler")):
            part = _part(parts, component)
            if not part:
                if component == 2:  # ELR: the filler assigned identifier (EIP-2) is required, the placer's (EIP-1) optional
                    return _missing("SPM-2", "the specimen filler id (EIP-2) is missing", spm.where(2, 1, 2))
                continue
            problem = _ei_problem(part, "&", what=f"specimen {what} id")
            if problem:
                return _wrong("SPM-2", problem, spm.where(2, 1, component))
    return None


def _provider(name: str, number: int) -> Callable[[list[Segment]], Problem | None]:
    def check(segments: list[Segment]) -> Problem | None:
        for segment in _each(segments, name):
            for repetition, xcn in enumerate(segment.repetitions(number), start=1):
                parts = _components(xcn)
                where = f"{name}-{number}"
                if not _part(parts, 1):
                    return _missing(where, "ordering provider without an id (XCN-1)", segment.where(number, repetition, 1))
                problem = _hd_problem(_part(parts, 9), "&", name="assigning authority (XCN-9) HD")
                if problem:
                    return _wrong(where, f"ordering provider {problem}", segment.where(number, repetition, 9))
                if not _part(parts, 13):
                    return _missing(
                        where, "ordering provider needs an identifier type code (XCN-13)", segment.where(number, repetition, 13)
                    )
        return None

    return check


def _obx18(segments: list[Segment]) -> Problem | None:
    for obx in _each(segments, "OBX"):
        for repetition, ei in enumerate(obx.repetitions(18), start=1):
            problem = _ei_problem(ei, what="equipment instance id")
            if problem:
                return _wrong("OBX-18", problem, obx.where(18, repetition))
    return None


_EI = "EI with namespace, OID and ISO"
_XCN = "when present: XCN with an id, an assigning authority HD with OID and ISO, a type code"
RULES: tuple[Rule, ...] = (
    Rule("MSH-21", "the ELR 2.5.1 profile: PHLabReport-NoAck^ELR251R1_Rcvr_Prof^2.16.840.1.113883.9.11^ISO", _msh21),
    Rule("MSH-3", "sending application: an HD with an OID (HD-2) and ISO (HD-3)", _msh_hd(3, "sending application")),
    Rule("MSH-4", "sending facility: an HD with an OID (HD-2) and ISO (HD-3)", _msh_hd(4, "sending facility")),
    Rule("MSH-5", "receiving application: a namespace (SIDEP) or a full HD namespace^OID^ISO", _msh_receiver(5, "receiving application")),
    Rule("MSH-6", "receiving facility: a namespace (SIDEP) or a full HD namespace^OID^ISO", _msh_receiver(6, "receiving facility")),
    Rule("SFT", "a software segment right after MSH (its SFT-1..4 are required by v2.5.1)", _sft),
    Rule("PID-3", "every identifier a CX with a value, an assigning authority HD with OID and ISO (CX-4), a type code (CX-5)", _pid3),
    Rule("ORC-2", f"an ORC before each OBR; placer order number: {_EI}", _order_number("ORC", 2, "placer order number")),
    Rule("ORC-3", f"filler order number: {_EI}", _order_number("ORC", 3, "filler order number")),
    Rule("OBR-2", f"placer order number: {_EI}", _order_number("OBR", 2, "placer order number")),
    Rule("OBR-3", f"filler order number: {_EI}", _order_number("OBR", 3, "filler order number")),
    Rule("OBR-3 = ORC-3", "OBR-3 equals ORC-3 and OBR-2 equals ORC-2 (the same test, every version)", _same_order_numbers),
    Rule("OBX-11", "F, C or D, the same in every OBX of the message", _obx11),
    Rule("OBR-25", "F when OBX-11 is F, C when OBX-11 is C or D", _obr25),
    Rule("SPM-2", "specimen id present, with its filler part (EIP-2); each part an EI with namespace, OID and ISO", _spm2),
    Rule("ORC-12", f"ordering provider, {_XCN}", _provider("ORC", 12)),
    Rule("OBR-16", f"ordering provider, {_XCN}", _provider("OBR", 16)),
    Rule("OBX-18", f"equipment instance, when present: {_EI}", _obx18),
)  # fmt: skip


def elr_problem(raw_segments: list[str]) -> Problem | None:
    """The first ELR rule the message breaks (RULES order), None when it follows them all. ``raw_segments``: the
    message's segments, MSH first."""
    segments = _segments(raw_segments)
    for rule in RULES:
        problem = rule.check(segments)
        if problem is not None:
            return problem
    return None


# -- batch envelope ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeRule:
    field: str
    requirement: str


BATCH_RULES: tuple[EnvelopeRule, ...] = (
    EnvelopeRule("FHS-3/BHS-3", "sending application: an HD with an OID and ISO"),
    EnvelopeRule("FHS-4/BHS-4", "sending facility: an HD with an OID and ISO"),
    EnvelopeRule("FHS-11/BHS-11", "file and batch control ids present and distinct"),
)


def batch_problem(headers: list[str]) -> str:
    """What is wrong with an FHS/BHS envelope (its header segments, in order), "" when it follows BATCH_RULES."""
    file_ids: list[str] = []
    for text in headers:
        name = text[:3]
        fields = _fields(text)
        for number, what in ((3, "sending application"), (4, "sending facility")):
            value = fields[number] if number < len(fields) else ""
            if not value:
                return f"{name}-{number}: {what} is missing"
            problem = _hd_problem(value)
            if problem:
                return f"{name}-{number}: {what} {problem}"
        control_id = fields[11] if len(fields) > 11 else ""
        if not control_id:
            return f"{name}-11: the control id is missing"
        if control_id in file_ids:
            return f"{name}-11: {control_id[:20]!r} is reused (file and batch ids must differ)"
        file_ids.append(control_id)
    return ""


def rules_as_dicts() -> dict[str, list[dict[str, str]]]:
    """The rules as the control API shows them (GET /control/rules)."""
    return {
        "hl7v2": [{"field": rule.field, "requirement": rule.requirement} for rule in RULES],
        "batch": [{"field": rule.field, "requirement": rule.requirement} for rule in BATCH_RULES],
    }
