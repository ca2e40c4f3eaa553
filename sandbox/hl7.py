"""HL7 v2.5.1 for the sandbox: MLLP framing, batch envelopes, validation with hl7apy, acknowledgements.

Validation is two-staged. First the structure: for a sample of messages (``full``: the first N and one in K, see
service.Sampler) hl7apy parses the message with ``VALIDATION_LEVEL.STRICT`` and checks it against the ORU_R01 v2.5.1
definition (``validate()``, about 17 ms); every other message goes through ``fast_problem`` (tens of microseconds):
the ORU_R01 segment grammar, the number of fields of each segment, the required fields and the date/time fields.
Then the sandbox applies the platform's own rules to every message (PID, OBR, a LOINC-coded OBX with status F/C/D,
SPM; after the results, the ask-at-order-entry answers 95419-8 / 65222-2 and the kit's lot and expiry, 99GS1 10 / 17,
each checked for its type and value: see relais.transfer.formats.hl7v2's docstring), and last the ELR 2.5.1 rules of
sandbox.elr (identifiers with OIDs, MSH-21, SFT, OBX-11/OBR-25 consistency...; split_batch applies its envelope rules).
Every problem is reported with a reason and an HL7 error location (ERL: segment^sequence^field^repetition^component).

Versions: an accepted message is one version of one test. Its key is the filler order number (OBR-3 EI.1, ORC-3 when
OBR-3 is empty), the same for every version of a test; its status comes from the results' OBX-11 (all F: final, all D:
removed, otherwise corrected). sandbox.store keeps one record per key with its history and refuses (AE, ERR-3 204
"Unknown key identifier") a correction or removal that matches no original.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_field, parse_message, parse_segment
from hl7apy.v2_5_1.segments import SEGMENTS

MLLP_START = b"\x0b"
MLLP_END = b"\x1c\x0d"

VERSION = "2.5.1"
ENCODING_CHARACTERS = "^~\\&"
PROCESSING_IDS = ("P", "T", "D")  # HL7 table 0103: production, training, debugging
RESULT_STATUSES = ("F", "C", "D")
# Observations that are not results (OBX-3 code, coding system) -> (OBX-2 value type, allowed OBX-5 values or None).
AOE_SYMPTOMS, AOE_ONSET = ("95419-8", "LN"), ("65222-2", "LN")
KIT_LOT, KIT_EXPIRY = ("10", "99GS1"), ("17", "99GS1")
SYMPTOM_ANSWERS = {("Y", "HL70136"), ("N", "HL70136"), ("UNK", "NULLFL")}
OTHER_OBSERVATIONS = {AOE_SYMPTOMS: "CWE", AOE_ONSET: "DT", KIT_LOT: "ST", KIT_EXPIRY: "DT"}
_DT = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
PSEUDO_NAME = "ANONYME"

# Who the sandbox says it is when the received message does not say to whom it was sent.
SANDBOX_APPLICATION = "SIDEP-SANDBOX"
SANDBOX_FACILITY = "SIDEP"

MSA3_MAX = 80  # MSA-3 (text message) is 80 characters long in v2.5.1; the whole reason goes in ERR-8
ERR8_MAX = 250

# HL7 table 0357 (message error condition codes) used in ERR-3.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
APPLICATION_INTERNAL_ERROR = "207"
ERROR_TEXTS = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION: "Unsupported version id",
    UNKNOWN_KEY: "Unknown key identifier",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))
_UNESCAPE = re.compile(r"\\([EFSTR])\\")
_UNESCAPED = {"E": "\\", "F": "|", "S": "^", "T": "&", "R": "~"}


def escape(text: str) -> str:
    """Text to put inside an HL7 field: delimiters escaped, line breaks flattened."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return " ".join(text.split())


def unescape(text: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], text)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def hl7_timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y%m%d%H%M%S+0000")


def new_control_id() -> str:
    return uuid.uuid4().hex[:20].upper()


def normalize(text: str) -> str:
    """Segments separated by \\r only (\\r\\n and \\n are tolerated on input), no empty segments."""
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(segment for segment in text.split("\r") if segment.strip())


def is_batch(text: str) -> bool:
    return text.startswith(("FHS", "BHS"))


# -- reading fields from raw segments ------------------------------------------------------------


def _fields(segment: str) -> list[str]:
    """Fields of a segment so that ``_fields(s)[n]`` is field n (MSH/FHS/BHS: MSH-1 is the separator itself)."""
    parts = segment.split("|")
    if parts[0] in ("MSH", "FHS", "BHS"):
        return [parts[0], "|", *parts[1:]]
    return parts


def _field(segment: str, position: int) -> str:
    parts = _fields(segment)
    return parts[position].split("~")[0] if position < len(parts) else ""


def _component(segment: str, position: int, component: int = 1, subcomponent: int = 1) -> str:
    components = _field(segment, position).split("^")
    value = components[component - 1] if component <= len(components) else ""
    subcomponents = value.split("&")
    return subcomponents[subcomponent - 1] if subcomponent <= len(subcomponents) else ""


@dataclass(frozen=True)
class Header:
    """What the sandbox reads from a header segment (MSH, FHS or BHS) without parsing the rest."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""  # MSH-10 / FHS-11 / BHS-11
    message_type: str = ""
    version: str = ""
    charset: str = ""
    accept_ack_type: str = ""  # MSH-15 (HL7 table 0155: AL, NE, ER, SU; empty with MSH-16 empty: original mode)
    application_ack_type: str = ""  # MSH-16 (table 0155)


def read_header(segment: str) -> Header:
    name = segment[:3]
    if name == "MSH":
        return Header(
            sending_application=_field(segment, 3),
            sending_facility=_field(segment, 4),
            receiving_application=_field(segment, 5),
            receiving_facility=_field(segment, 6),
            control_id=unescape(_field(segment, 10)),
            message_type=_field(segment, 9),
            version=_component(segment, 12),
            charset=_field(segment, 18),
            accept_ack_type=_field(segment, 15),
            application_ack_type=_field(segment, 16),
        )
    return Header(
        sending_application=_field(segment, 3),
        sending_facility=_field(segment, 4),
        receiving_application=_field(segment, 5),
        receiving_facility=_field(segment, 6),
        control_id=unescape(_field(segment, 11)),
    )


def message_id_of(text: str) -> str:
    """MSH-10 of a message, '' when there is no MSH."""
    return read_header(text).control_id if text.startswith("MSH") else ""


def charset_of(data: bytes) -> str:
    """The Python codec named by MSH-18 of the first MSH in ``data`` (UTF-8 unless it says 8859/1)."""
    start = data.find(b"MSH")
    if start < 0:
        return "utf-8"
    segment = data[start:].split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    return "latin-1" if _field(segment, 18) == "8859/1" else "utf-8"


# -- validation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    reason: str
    location: str = ""  # ERL: SEG^sequence^field^repetition^component
    code: str = APPLICATION_INTERNAL_ERROR  # HL7 table 0357
    # MSA-1: AR when MSH-9, MSH-11 or MSH-12 is not acceptable (HL7 v2.5.1 2.9.2, original acknowledgment rules), else AE
    ack: str = "AE"


@dataclass(frozen=True)
class Checked:
    text: str
    header: Header
    problem: Problem | None = None
    placer: str = ""
    filler: str = ""
    result_status: str = ""
    has_identity: bool = False
    # The AOE and kit observations read (OBX-3 code, OBX-5 value), e.g. (("95419-8", "Y"), ("10", "AB12")).
    observations: tuple[tuple[str, str], ...] = ()

    @property
    def test_key(self) -> str:
        """The test this message is a version of: its filler order number (the same for every version)."""
        return self.filler or self.placer

    @property
    def version_status(self) -> str:
        """final (every result F), removed (every result D) or corrected (any C, or a mix)."""
        statuses = set(self.result_status.split(","))
        if statuses == {"F"}:
            return "final"
        if statuses == {"D"}:
            return "removed"
        return "corrected"

    @property
    def message_id(self) -> str:
        return self.header.control_id


def _shorten(text: str) -> str:
    """hl7apy quotes whole values in its messages; keep reasons readable."""
    return clip(re.sub(r"\S{61,}", lambda m: m.group(0)[:30] + "...", " ".join(str(text).split())), 300)


_MISSING_CHILD = re.compile(r"Missing required child ([\w.]+)\.(\w+)")
_EXTRA_COMPONENT = re.compile(r"Invalid name for (Component|SubComponent): ([A-Z]+)_(\d+)")


def _explain(exc: Exception) -> str:
    """hl7apy's message, reworded when it is one of the cryptic usual ones."""
    message = str(exc)
    missing = _MISSING_CHILD.search(message)
    if missing:
        child = missing.group(2)
        field = re.fullmatch(r"([A-Z][A-Z0-9]{2})_(\d+)", child)
        if field:
            return f"required field {field.group(1)}-{field.group(2)} is missing"
        return f"required {child} is missing in {missing.group(1)}"
    extra = _EXTRA_COMPONENT.search(message)
    if extra:
        kind = extra.group(1).lower()
        return f"too many {kind}s for data type {extra.group(2)} ({kind} {extra.group(3)} does not exist)"
    return _shorten(message)


_HL7APY_FIELD = re.compile(r"\b([A-Z][A-Z0-9]{2})_(\d+)\b")
_HL7APY_SEGMENT = re.compile(r"\.([A-Z][A-Z0-9]{2})\b")


def _locate_hl7apy_error(text: str, exc: Exception) -> str:
    """Best-effort ERL for an hl7apy error: from its message, else by parsing segments and fields one by one."""
    message = str(exc)
    match = _HL7APY_FIELD.search(message)
    if match and match.group(1) in SEGMENTS:
        return f"{match.group(1)}^1^{match.group(2)}"
    match = _HL7APY_SEGMENT.search(message)
    if match and match.group(1) in SEGMENTS:
        return match.group(1)
    sequences: dict[str, int] = {}
    for segment in text.split("\r"):
        name = segment[:3]
        sequences[name] = sequences.get(name, 0) + 1
        try:
            parse_segment(segment, version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        except (HL7apyException, ValueError, TypeError, KeyError):
            if name == "MSH":
                return "MSH^1"
            for position, value in enumerate(_fields(segment)[1:], start=1):
                for repetition, text_value in enumerate(value.split("~"), start=1):
                    try:
                        parse_field(text_value, name=f"{name}_{position}", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
                    except (HL7apyException, ValueError, TypeError, KeyError):
                        return f"{name}^{sequences[name]}^{position}^{repetition}"
            return f"{name}^{sequences[name]}"
    return ""


def _walk(element: Any, group: str = "") -> Iterator[tuple[Any, str]]:
    """(segment, name of the group holding it) in message order."""
    for child in element.children:
        if child.classname == "Group":
            yield from _walk(child, child.name)
        elif child.classname == "Segment":
            yield child, group


def _error_code(exc: Exception) -> str:
    message = str(exc)
    if "Missing required child" in message:
        return REQUIRED_FIELD_MISSING if _HL7APY_FIELD.search(message) else SEGMENT_SEQUENCE_ERROR
    if isinstance(exc, ValueError) or "max length" in message or "Invalid name for" in message:
        return DATA_TYPE_ERROR
    return APPLICATION_INTERNAL_ERROR


# v2.5.1 ORU_R01 as a sequence of segment names: MSH [SFT] {[PID [PD1] [NTE] [NK1] [PV1 [PV2]]] {[ORC] OBR [NTE]
# [TQ1 [TQ2]] [CTD] [OBX [NTE]] [FT1] [CTI] [SPM [OBX]]}} [DSC] (repetitions allowed where the standard has braces).
_ORU_R01_GRAMMAR = re.compile(
    r"MSH (SFT )*((PID (PD1 )?(NTE )*(NK1 )*(PV1 (PV2 )?)?)?"
    r"((ORC )?OBR (NTE )*(TQ1 (TQ2 )*)*(CTD )?(OBX (NTE )*)*(FT1 )*(CTI )*(SPM (OBX )*)*)+)+(DSC )?"
)
# Fields each segment has in v2.5.1 (a segment with more is refused, as hl7apy STRICT does).
SEGMENT_FIELDS = {
    "MSH": 21, "SFT": 6, "PID": 39, "PD1": 21, "NTE": 4, "NK1": 39, "PV1": 52, "PV2": 49, "ORC": 31, "OBR": 50,
    "TQ1": 14, "TQ2": 10, "CTD": 7, "OBX": 25, "FT1": 39, "CTI": 3, "SPM": 29, "DSC": 2,
}  # fmt: skip
REQUIRED_FIELDS = {
    "MSH": (7, 9, 10, 11, 12),
    "SFT": (1, 2, 3, 4),
    "PID": (3, 5),
    "ORC": (1,),
    "OBR": (4,),
    "OBX": (3, 11),
    "SPM": (4,),
    "PV1": (2,),
}
# Fields whose first component is a date/time (TS, DR, DT): MSH-7, PID-7, ORC-9, OBR-7/22, OBX-14/19, SPM-17/18.
DATE_FIELDS = {"MSH": (7,), "PID": (7,), "ORC": (9,), "OBR": (7, 22), "OBX": (14, 19), "SPM": (17, 18)}
_DTM = re.compile(r"\d{4}((0[1-9]|1[0-2])((0[1-9]|[12]\d|3[01])(([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?")


def fast_problem(segments: list[str]) -> Problem | None:
    """The structural checks hl7apy STRICT makes that matter to the platform, on the raw segments: grammar, field
    counts, required fields, dates. None when the message passes."""
    names = [segment[:3] for segment in segments]
    for index, segment in enumerate(segments):
        if segment[:3] not in SEGMENT_FIELDS or (len(segment) > 3 and segment[3] != "|"):
            return Problem(
                f"segment {segment[:3]!r} is not allowed in ORU_R01 v2.5.1", f"{segment[:3]}^{index + 1}", SEGMENT_SEQUENCE_ERROR
            )
    if not _ORU_R01_GRAMMAR.fullmatch(" ".join(names) + " "):
        return Problem(f"segment order {'-'.join(names)} does not follow ORU_R01 v2.5.1", "", SEGMENT_SEQUENCE_ERROR)
    sequences: dict[str, int] = {}
    for segment in segments:
        name = segment[:3]
        sequences[name] = sequences.get(name, 0) + 1
        fields = _fields(segment)
        where = f"{name}^{sequences[name]}"
        if len(fields) - 1 > SEGMENT_FIELDS[name]:
            return Problem(f"{name} has {len(fields) - 1} fields, v2.5.1 defines {SEGMENT_FIELDS[name]}", where, DATA_TYPE_ERROR)
        for number in REQUIRED_FIELDS.get(name, ()):
            if number >= len(fields) or not fields[number]:
                return Problem(f"required field {name}-{number} is missing", f"{where}^{number}", REQUIRED_FIELD_MISSING)
        for number in DATE_FIELDS.get(name, ()):
            value = fields[number].split("~")[0].split("^")[0].split("&")[0] if number < len(fields) else ""
            if value and not _DTM.fullmatch(value):
                return Problem(f"{name}-{number}: {value[:30]!r} is not an HL7 valid date", f"{where}^{number}^1", DATA_TYPE_ERROR)
    return None


def _raw_segments(segments: list[str]) -> list[tuple[str, int, str, str]]:
    """(name, sequence, er7, group) as hl7apy's tree gives them: an OBX after OBR is a result, after SPM a specimen's."""
    counts: dict[str, int] = {}
    numbered = []
    group = ""
    for segment in segments:
        name = segment[:3]
        counts[name] = counts.get(name, 0) + 1
        if name == "OBR":
            group = "ORU_R01_OBSERVATION"
        elif name == "SPM":
            group = "ORU_R01_SPECIMEN"
        numbered.append((name, counts[name], segment, group if name == "OBX" else ""))
    return numbered


def check_message(raw: str, *, full: bool = True) -> Checked:
    """Validate one HL7 message (not a batch) against the platform's contract; ``full``: with hl7apy STRICT."""
    text = normalize(raw)
    if not text.startswith("MSH"):
        return Checked(text, Header(), Problem("the message does not start with an MSH segment", "MSH", SEGMENT_SEQUENCE_ERROR))
    msh = text.split("\r", 1)[0]
    header = read_header(msh)

    def problem(reason: str, location: str, code: str, ack: str = "AE") -> Checked:
        return Checked(text, header, Problem(reason, location, code, ack))

    if len(msh) < 8 or msh[3] != "|" or _fields(msh)[2] != ENCODING_CHARACTERS:
        return problem("MSH-1/MSH-2 must be '|' and '^~\\&'", "MSH^1^2", DATA_TYPE_ERROR)
    if not header.control_id:
        return problem("MSH-10 (message control id) is empty", "MSH^1^10", REQUIRED_FIELD_MISSING)
    message_type = header.message_type.split("^")
    if message_type[:2] != ["ORU", "R01"] or (len(message_type) > 2 and message_type[2] not in ("", "ORU_R01")):
        return problem(
            f"MSH-9 (message type) must be ORU^R01^ORU_R01, got {header.message_type!r}", "MSH^1^9", UNSUPPORTED_MESSAGE_TYPE, "AR"
        )
    processing_id = _component(msh, 11)
    if processing_id not in PROCESSING_IDS:
        return problem(f"MSH-11 (processing id) must be P, T or D, got {processing_id!r}", "MSH^1^11", UNSUPPORTED_PROCESSING_ID, "AR")
    if header.version != VERSION:
        return problem(f"MSH-12 (version id) must be {VERSION}, got {header.version!r}", "MSH^1^12", UNSUPPORTED_VERSION, "AR")

    numbered: list[tuple[str, int, str, str]] = []  # name, sequence, er7, group
    if full:
        try:
            message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            message.validate()
        except (HL7apyException, ValueError, TypeError, KeyError, IndexError) as exc:
            reason = f"hl7apy strict: {_explain(exc)}"
            return problem(reason, _locate_hl7apy_error(text, exc), _error_code(exc))
        counts: dict[str, int] = {}
        for segment, group in _walk(message):
            counts[segment.name] = counts.get(segment.name, 0) + 1
            numbered.append((segment.name, counts[segment.name], segment.to_er7(), group))
    else:
        raw_segments = text.split("\r")
        fast = fast_problem(raw_segments)
        if fast is not None:
            return problem(fast.reason, fast.location, fast.code)
        numbered = _raw_segments(raw_segments)

    def first(name: str) -> str | None:
        return next((er7 for seg_name, _, er7, _ in numbered if seg_name == name), None)

    pid, obr, orc = first("PID"), first("OBR"), first("ORC")
    if pid is None:
        return problem("PID segment (patient) is missing", "PID", SEGMENT_SEQUENCE_ERROR)
    if obr is None:
        return problem("OBR segment (observation request) is missing", "OBR", SEGMENT_SEQUENCE_ERROR)
    results = [(seq, er7) for name, seq, er7, group in numbered if name == "OBX" and group == "ORU_R01_OBSERVATION"]
    if not results:
        return problem("no OBX result segment (an OBX after OBR carries the result)", "OBX", SEGMENT_SEQUENCE_ERROR)
    statuses: list[str] = []
    observations: list[tuple[str, str]] = []
    for seq, obx in results:
        code, coding_system = _component(obx, 3, 1), _component(obx, 3, 3)
        if (code, coding_system) in OTHER_OBSERVATIONS:
            other = _other_observation_problem(seq, obx, (code, coding_system), observations)
            if other is not None:
                return problem(other.reason, other.location, other.code)
            answer = _component(obx, 5, 1) if OTHER_OBSERVATIONS[(code, coding_system)] == "CWE" else _field(obx, 5)
            observations.append((code, unescape(answer)))
        elif observations:
            return problem(
                f"OBX #{seq}: a result after the ask-at-order-entry or kit observations (they come last)",
                f"OBX^{seq}^3",
                SEGMENT_SEQUENCE_ERROR,
            )
        elif coding_system != "LN":
            return problem(
                f"OBX #{seq}: OBX-3.3 coding system must be LN (LOINC), got {coding_system!r}",
                f"OBX^{seq}^3^1^3",
                TABLE_VALUE_NOT_FOUND,
            )
        if not code:
            return problem(f"OBX #{seq}: OBX-3.1 (LOINC code) is empty", f"OBX^{seq}^3^1^1", REQUIRED_FIELD_MISSING)
        status = _field(obx, 11)
        if status not in RESULT_STATUSES:
            return problem(
                f"OBX #{seq}: OBX-11 result status must be F, C or D, got {status!r}",
                f"OBX^{seq}^11",
                TABLE_VALUE_NOT_FOUND,
            )
        if status not in statuses:
            statuses.append(status)
    if len(observations) == len(results):
        return problem("no OBX result segment (only ask-at-order-entry or kit observations)", "OBX", SEGMENT_SEQUENCE_ERROR)
    if not any(name == "SPM" for name, _, _, _ in numbered):
        return problem("SPM segment (specimen) is missing", "SPM", SEGMENT_SEQUENCE_ERROR)

    from sandbox.elr import elr_problem  # sandbox.elr reads fields with this module's helpers

    elr = elr_problem(text.split("\r"))
    if elr is not None:
        return problem(elr.reason, elr.location, elr.code)

    placer = (_component(orc, 2) if orc else "") or _component(obr, 2)
    filler = _component(obr, 3) or (_component(orc, 3) if orc else "")
    family = unescape(_component(pid, 5)).strip()
    return Checked(
        text,
        header,
        placer=unescape(placer),
        filler=unescape(filler),
        result_status=",".join(statuses),
        has_identity=bool(family) and family.upper() != PSEUDO_NAME,
        observations=tuple(observations),
    )


def _other_observation_problem(seq: int, obx: str, kind: tuple[str, str], seen: list[tuple[str, str]]) -> Problem | None:
    """An AOE or kit OBX: its value type and value, each at most once, an onset only after symptoms "Y"."""
    where = f"OBX^{seq}"
    value_type = OTHER_OBSERVATIONS[kind]
    if _field(obx, 2) != value_type:
        return Problem(f"OBX #{seq}: {kind[0]} must have value type {value_type}, got {_field(obx, 2)!r}", f"{where}^2", DATA_TYPE_ERROR)
    if any(code == kind[0] for code, _ in seen):
        return Problem(f"OBX #{seq}: {kind[0]} is given twice", f"{where}^3", SEGMENT_SEQUENCE_ERROR)
    value = _field(obx, 5)
    if not value:
        return Problem(f"OBX #{seq}: OBX-5 (the answer to {kind[0]}) is empty", f"{where}^5", REQUIRED_FIELD_MISSING)
    if kind == AOE_SYMPTOMS and (_component(obx, 5, 1), _component(obx, 5, 3)) not in SYMPTOM_ANSWERS:
        return Problem(
            f"OBX #{seq}: 95419-8 takes Y or N (HL70136) or UNK (NULLFL), got {value[:30]!r}", f"{where}^5", TABLE_VALUE_NOT_FOUND
        )
    if value_type == "DT" and not _DT.fullmatch(value):
        return Problem(f"OBX #{seq}: {value[:30]!r} is not an HL7 date (YYYYMMDD)", f"{where}^5", DATA_TYPE_ERROR)
    if kind == AOE_ONSET and (AOE_SYMPTOMS[0], "Y") not in seen:
        return Problem(f"OBX #{seq}: a symptom onset without 95419-8 = Y before it", f"{where}^3", SEGMENT_SEQUENCE_ERROR)
    return None


# -- acknowledgements ----------------------------------------------------------------------------

ACK_CONDITIONS = ("AL", "NE", "ER", "SU")  # HL7 table 0155 (accept/application acknowledgment conditions)
COMMIT_CODES = {"AA": "CA", "AE": "CE", "AR": "CR"}  # the accept (commit) acknowledgement for each original outcome


def enhanced_mode(header: Header) -> bool:
    """HL7 v2.5.1 (chapter 2): a message with MSH-15 or MSH-16 valued asks for enhanced acknowledgement, else original mode."""
    return bool(header.accept_ack_type or header.application_ack_type)


def ack_condition_problem(header: Header) -> Problem | None:
    """MSH-15 or MSH-16 outside table 0155: the sandbox cannot tell what to answer (checked in enhanced ack mode)."""
    for number, value in ((15, header.accept_ack_type), (16, header.application_ack_type)):
        if value and value not in ACK_CONDITIONS:
            return Problem(
                f"MSH-{number} (acknowledgment type) must be AL, NE, ER or SU (HL7 table 0155), got {value[:10]!r}",
                f"MSH^1^{number}",
                TABLE_VALUE_NOT_FOUND,
            )
    return None


def _asks(condition: str, success: bool) -> bool:
    return condition == "AL" or (condition == "ER" and not success) or (condition == "SU" and success)


def answer_code(header: Header, code: str, ack_mode: str) -> str | None:
    """MSA-1 for an outcome given as its original-mode code (AA accepted, AE error, AR rejected), or None when the
    message asks for no acknowledgement of this outcome.

    ``ack_mode`` "application": ``code`` whatever the message asks. "enhanced": a message in original mode (MSH-15 and
    MSH-16 empty) gets ``code``; one whose MSH-15 asks for an accept acknowledgement of this outcome (AL; ER on error or
    rejection; SU on success) gets CA/CE/CR; otherwise, when MSH-16 asks for an application acknowledgement of it,
    ``code``; otherwise nothing. The sandbox commits and validates in one step, so after a CA/CE/CR it sends no
    separate application acknowledgement."""
    if ack_mode != "enhanced" or not enhanced_mode(header):
        return code
    success = code == "AA"
    if _asks(header.accept_ack_type, success):
        return COMMIT_CODES[code]
    if _asks(header.application_ack_type, success):
        return code
    return None


def _reply_header(name: str, received: Header, control_id: str, extra: list[str]) -> str:
    """MSH/FHS/BHS of a reply: sender and receiver of the received header swapped."""
    fields = [
        name,
        ENCODING_CHARACTERS,
        received.receiving_application or SANDBOX_APPLICATION,
        received.receiving_facility or SANDBOX_FACILITY,
        received.sending_application,
        received.sending_facility,
        hl7_timestamp(),
        "",
    ]
    if name == "MSH":
        fields += ["ACK^R01^ACK", control_id, "P", VERSION, "", "", "NE", "NE"]
    else:
        fields += ["", "", control_id, escape(received.control_id)]
    return "|".join(fields + extra).rstrip("|")


def ack(received: Header, code: str, text: str = "", problem: Problem | None = None) -> str:
    """An ACK^R01 for one message: MSA-1 AA/AE/AR (CA/CE/CR), MSA-2 the received MSH-10, ERR unless AA/CA. Segments end with \\r."""
    segments = [
        _reply_header("MSH", received, new_control_id(), []),
        "|".join(["MSA", code, escape(received.control_id), escape(clip(text, MSA3_MAX))]).rstrip("|"),
    ]
    if code not in ("AA", "CA"):
        error = problem or Problem(text)
        error_code = f"{error.code}^{ERROR_TEXTS.get(error.code, '')}^HL70357"
        severity = "E"
        segments.append("|".join(["ERR", "", error.location, error_code, severity, "", "", "", escape(clip(error.reason, ERR8_MAX))]))
    return "\r".join(segments) + "\r"


# -- batches -------------------------------------------------------------------------------------


@dataclass
class Batch:
    header: Header
    messages: list[str] = field(default_factory=list)


@dataclass
class BatchFile:
    header: Header
    batches: list[Batch] = field(default_factory=list)
    problem: str = ""  # envelope problem: every message of the file is then answered AE with it

    @property
    def messages(self) -> list[str]:
        return [message for batch in self.batches for message in batch.messages]


def split_batch(raw: str) -> BatchFile:
    """FHS? (BHS MSH... BTS)+ FTS? — checks the envelope (order, BTS-1 and FTS-1 counts) and splits the messages."""
    segments = normalize(raw).split("\r")
    file = BatchFile(header=read_header(segments[0]) if segments[0].startswith("FHS") else Header())
    has_fhs = segments[0].startswith("FHS")
    problems: list[str] = []
    i = 1 if has_fhs else 0
    has_fts = False
    while i < len(segments):
        segment = segments[i]
        name = segment[:3]
        if has_fts:
            problems.append(f"segment {name} after FTS")
            break
        if name == "BHS":
            batch = Batch(header=read_header(segment))
            file.batches.append(batch)
            i += 1
            current: list[str] | None = None
            while i < len(segments) and segments[i][:3] not in ("BTS", "BHS", "FTS", "FHS"):
                if segments[i].startswith("MSH"):
                    if current:
                        batch.messages.append("\r".join(current))
                    current = [segments[i]]
                elif current is None:
                    problems.append(f"segment {segments[i][:3]} before the first MSH of batch #{len(file.batches)}")
                    current = []
                else:
                    current.append(segments[i])
                i += 1
            if current:
                batch.messages.append("\r".join(current))
            if i < len(segments) and segments[i].startswith("BTS"):
                declared = _field(segments[i], 1)
                if declared and declared != str(len(batch.messages)):
                    problems.append(f"BTS-1 of batch #{len(file.batches)} says {declared} messages, the batch holds {len(batch.messages)}")
                i += 1
            else:
                problems.append(f"batch #{len(file.batches)} has no BTS")
        elif name == "FTS":
            if not has_fhs:
                problems.append("FTS without FHS")
            declared = _field(segment, 1)
            if declared and declared != str(len(file.batches)):
                problems.append(f"FTS-1 says {declared} batches, the file holds {len(file.batches)}")
            has_fts = True
            i += 1
        else:
            problems.append(f"segment {name} outside a BHS/BTS batch")
            break
    if not problems:
        from sandbox.elr import batch_problem

        envelope = batch_problem([segment for segment in segments if segment[:3] in ("FHS", "BHS")])
        if envelope:
            problems.append(envelope)
    if has_fhs and not has_fts and not problems:
        problems.append("FHS without FTS")
    if not file.batches and not problems:
        problems.append("the batch holds no BHS")
    file.problem = "; ".join(problems)
    return file


def batch_ack(file: BatchFile, acks: list[list[str]]) -> str:
    """FHS, then per received batch BHS + its ACKs + BTS, then FTS. ``acks`` holds the ACKs of each batch, in order."""
    comment = escape(clip("batch envelope: " + file.problem, 80)) if file.problem else ""
    segments = [_reply_header("FHS", file.header, new_control_id(), [])]
    batches = file.batches or [Batch(header=Header())]
    for batch, batch_acks in zip(batches, acks or [[]], strict=False):
        segments.append(_reply_header("BHS", batch.header, new_control_id(), []))
        segments.extend(message.rstrip("\r") for message in batch_acks)
        segments.append("|".join(["BTS", str(len(batch_acks)), comment]).rstrip("|"))
    segments.append("|".join(["FTS", str(len(batches)), comment]).rstrip("|"))
    return "\r".join(segments) + "\r"


def frame(payload: bytes) -> bytes:
    return MLLP_START + payload + MLLP_END
