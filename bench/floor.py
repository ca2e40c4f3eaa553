"""The bare-Python floor for batch intake: the work Relais does per result, without Django, in one process.

Usage: .venv/bin/python bench/floor.py [--results 5000] [--batch 1000] [--schema-from relais.sqlite3]
Per batch of 1,000 (the JSON body the benchmark posts): parse it, validate every item's fields by hand (lengths,
choices, dates, device in the catalogue, result codes, phone, e-mail), look up existing patients of the pharmacy by
identity blind index in one query, then per result: AES-256-GCM for each personal field with the app's associated data
and ciphertext format (11 identity fields, the empty correction reason, the signed certificate, the two messages'
address and link, the item's error list), HMAC-SHA256 blind indexes, the EU DCC built, CBOR/COSE-signed (ES256),
compressed and Base45-encoded by relais/certificates/cose.py (no Django in it), the HL7 v2 ORU^R01 string in the
renderer's ELR 2.5.1 shape (SFT, MSH-21, OIDs, ORC-12/21-23, OBX-17/18, SPM-2/18, the per-destination pseudonym; the
same text as relais/transfer/formats/hl7v2.py for the same data, tests/bench/test_floor_hl7.py), a result link token
and its hash; then the same SQLite rows as the app (patient, screening, result, certificate, outbox row,
result link, two notifications, three audit events and their subject rows, the submission and its items), written
with executemany in one transaction per batch on a copy of a freshly migrated Relais database (same tables, indexes,
WAL, synchronous=FULL, foreign keys on). Certificate payload schema validation is not repeated per certificate (issue
13: proven by tests instead). `bench/run.py` runs it in the same session as the app figures.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relais.accounts.names import split_full_name  # noqa: E402  (pure Python)
from relais.certificates.cose import sign_hc1  # noqa: E402  (pure Python: cbor2 and cryptography, no Django)
from relais.certificates.transliteration import transliterate  # noqa: E402
from relais.certificates.uvci import new_uvci  # noqa: E402
from relais.patients.names import name_search_values  # noqa: E402  (pure Python)

RESULT_CODES = {"260373001", "260415000", "125154007", "455371000124106"}  # 455371000124106: the old invalid code
SEXES = {"F", "M", "O", "U"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FIELD_LIMITS = {
    "last_name": 100,
    "first_names": 150,
    "nir": 21,
    "address_line": 200,
    "postcode": 16,
    "city": 100,
    "phone": 32,
    "email": 254,
}
PERSONAL = ("last_name", "first_names", "sex", "date_of_birth", "nir", "address_line", "postcode", "city", "country", "phone", "email")
_FOLD_MARKS_AFTER = ("LATIN", "GREEK", "ARABIC", "HEBREW")


def normalise_name(value: str) -> str:
    """relais.core.blind_index.normalise_name, copied (that module reads Django settings)."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    kept: list[str] = []
    base_script = ""
    for ch in unicodedata.normalize("NFD", folded):
        if unicodedata.category(ch).startswith("M"):
            if base_script and base_script not in _FOLD_MARKS_AFTER:
                kept.append(ch)
            continue
        if ch.isalpha():
            kept.append(ch)
            base_script = unicodedata.name(ch, "").split(" ", 1)[0]
        else:
            base_script = ""
    return unicodedata.normalize("NFC", "".join(kept))


class Invalid(Exception):
    pass


def _phone(value: str) -> str:
    digits = re.sub(r"[\s.\-()]", "", value)
    if digits.startswith("0") and len(digits) == 10:
        digits = "+33" + digits[1:]
    if not re.fullmatch(r"\+[1-9]\d{7,14}", digits):
        raise Invalid("phone")
    return digits


def validate(item: Any, *, devices: set[str], now: datetime) -> dict[str, Any]:
    """The checks the API makes on one item (schema, identity, screening); raises Invalid."""
    if not isinstance(item, dict) or set(item) - {
        "patient",
        "device_id",
        "specimen_type",
        "sampled_at",
        "results",
        "information_notice_given",
    }:
        raise Invalid("item")
    patient = item.get("patient")
    if not isinstance(patient, dict):
        raise Invalid("patient")
    identity: dict[str, Any] = {}
    for name in PERSONAL:
        value = patient.get(name, "FR" if name == "country" else "")
        if not isinstance(value, str) or "\x00" in value or len(value) > FIELD_LIMITS.get(name, 10):
            raise Invalid(name)
        identity[name] = value.strip()
    if not identity["last_name"] or not normalise_name(identity["last_name"]) or not identity["first_names"]:
        raise Invalid("name")
    if identity["sex"] not in SEXES:
        raise Invalid("sex")
    birth = date.fromisoformat(identity["date_of_birth"])
    if birth > now.date() or birth.year < 1900:
        raise Invalid("date_of_birth")
    identity["date_of_birth"] = birth
    if len(identity["country"]) != 2 or not identity["country"].isalpha():
        raise Invalid("country")
    identity["country"] = identity["country"].upper()
    if identity["phone"]:
        identity["phone"] = _phone(identity["phone"])
    if identity["email"] and not EMAIL.match(identity["email"]):
        raise Invalid("email")
    device = str(item.get("device_id", "")).strip()
    if device not in devices:
        raise Invalid("device_id")
    sampled = datetime.fromisoformat(item["sampled_at"])
    if sampled.utcoffset() is None or sampled > now + timedelta(minutes=5) or sampled < now - timedelta(days=7):
        raise Invalid("sampled_at")
    results = item.get("results")
    if not isinstance(results, dict) or not results or any(code not in RESULT_CODES for code in results.values()):
        raise Invalid("results")
    if item.get("information_notice_given") is not True:
        raise Invalid("information_notice_given")
    return {
        "identity": identity,
        "device": device,
        "sampled_at": sampled,
        "results": results,
        "specimen": item.get("specimen_type", "258500001"),
    }


# --- HL7 v2.5.1 ORU^R01, the shape of relais/transfer/formats/hl7v2.py (issue 16: ELR 2.5.1 identifiers and segments) ---
# The renderer reads Django settings (the OID root, the destinations), so its shape is rebuilt here with the same
# constants; tests/bench/test_floor_hl7.py renders one payload both ways and compares segments, fields and components.

DEFAULT_OID_ROOT = "2.25.85395544823745402692894344829283372808"  # settings.RELAIS_OID_ROOT's default
OID_ARCS = {"application": "1", "order": "3", "specimen": "4", "pseudonym": "9", "device": "11", "staff": "12"}  # identifiers._ARCS
FINESS_OID = "1.2.250.1.71.4.2.2"
RPPS_OID = "1.2.250.1.71.4.2.1"
INS_NIR_OID = "1.2.250.1.213.1.4.8"
ELR_PROFILE = "PHLabReport-NoAck^ELR251R1_Rcvr_Prof^2.16.840.1.113883.9.11^ISO"
LOINC_DISPLAY = {"94558-4": "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay"}
RESULT_DISPLAY = {"260373001": "Detected (positive)", "260415000": "Not detected (negative)", "125154007": "Invalid (test to repeat)"}
SPECIMEN_DISPLAY = {"258500001": "Nasopharyngeal swab", "697989009": "Anterior nares (nasal) swab", "258529004": "Throat swab"}
_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
_FRENCH_NUMBER = re.compile(r"\+33([1-9])(\d{8})")


def _country_alpha3() -> dict[str, str]:
    """hl7v2._COUNTRIES, read from the renderer's source (importing it would load Django): one table, no copy."""
    import ast

    tree = ast.parse((ROOT / "relais" / "transfer" / "formats" / "hl7v2.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_COUNTRIES" for t in node.targets):
            return dict(pair.split(":") for pair in ast.literal_eval(node.value).split())
    raise RuntimeError("hl7v2._COUNTRIES not found")


COUNTRY_ALPHA3 = _country_alpha3()


def _software_version() -> str:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _hl7_escape(value: str) -> str:
    value = _BREAKS.sub(" ", value)
    return value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\").replace("~", "\\R\\")


def _c(*parts: str) -> str:
    return "^".join(parts).rstrip("^")


def _s(*parts: str) -> str:
    return "&".join(parts).rstrip("&")


def _segment(name: str, fields: dict[int, str]) -> str:
    first = 2 if name == "MSH" else 1
    return "|".join([name, *(fields.get(n, "") for n in range(first, max(fields) + 1))]).rstrip("|")


def _dtm(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S%z")


def _phone_xtn(phone: str, use: str = "PRN", equipment: str = "") -> str:
    """hl7v2._phone_xtn: XTN-5/6/7 country, area and local number, XTN-12 the E.164 number."""
    french = _FRENCH_NUMBER.fullmatch(phone)
    if french:
        area, local = french.groups()
        return _c("", use, equipment or ("CP" if area in "67" else "PH"), "", "33", area, local, "", "", "", "", _hl7_escape(phone))
    import phonenumbers

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return _c("", use, equipment or "PH", "", "", "", "", "", "", "", "", _hl7_escape(phone))
    national = phonenumbers.national_significant_number(number)
    cut = phonenumbers.length_of_national_destination_code(number)
    mobile = phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    kind = equipment or ("CP" if mobile else "PH")
    return _c("", use, kind, "", str(number.country_code), national[:cut], national[cut:], "", "", "", "", _hl7_escape(phone))


class Hl7Sender:
    """What every message of one pharmacy shares (the renderer caches the same: SFT, the facility OID, the phone XTN)."""

    def __init__(
        self,
        *,
        pharmacy_id: str,
        finess: str,
        name: str,
        address_line: str,
        postcode: str,
        city: str,
        phone: str,
        recorder_id: str,
        recorder_rpps: str,
        recorder_full_name: str,
        oid_root: str = DEFAULT_OID_ROOT,
        receivers: tuple[str, str] = ("SIDEP", "SIDEP"),
    ) -> None:
        self.oid = {kind: f"{oid_root}.{arc}" for kind, arc in OID_ARCS.items()}
        application = _c("RELAIS", self.oid["application"], "ISO")
        self.msh_fields = {
            2: "^~\\&",
            3: application,
            4: _c(finess, f"2.25.{uuid.UUID(pharmacy_id).int}", "ISO"),
            5: receivers[0],
            6: receivers[1],
            9: "ORU^R01^ORU_R01",
            11: "P",
            12: "2.5.1",
            15: "AL",
            16: "NE",
            17: "FRA",
            18: "UNICODE UTF-8",
            21: ELR_PROFILE,
        }
        version = _hl7_escape(_software_version())
        organisation = _c("Relais", "", "", "", "", _s("RELAIS", self.oid["application"], "ISO"), "XX", "", "", self.oid["application"])
        self.sft = _segment("SFT", {1: organisation, 2: version, 3: "Relais", 4: f"relais-{version}"})
        self.xon = _c(_hl7_escape(name), "", "", "", "", _s("FINESS", FINESS_OID, "ISO"), "FINEG", "", "", finess)
        self.xad = _c(_hl7_escape(address_line), "", _hl7_escape(city), "", _hl7_escape(postcode), "FRA", "B")
        self.xtn = _phone_xtn(phone, "WPN", "PH") if phone else ""
        family, given = split_full_name(recorder_full_name)
        if recorder_rpps:
            who, authority, kind = "8" + recorder_rpps, _s("RPPS", RPPS_OID, "ISO"), "RPPS"
        else:
            who, authority, kind = _hl7_escape(recorder_id), _s("RELAIS", self.oid["staff"], "ISO"), "RI"
        self.provider = _c(who, _hl7_escape(family), _hl7_escape(given), "", "", "", "", "", authority, "", "", "", kind)
        self.pseudonym_authority = _s("RELAIS", self.oid["pseudonym"], "ISO")
        self.nir_authority = _s("INS-NIR", INS_NIR_OID, "ISO")


def hl7_message(
    *,
    sender: Hl7Sender,
    control_id: str,
    identity: dict[str, Any],
    pseudonym: str,
    series: str,
    device: str,
    device_name: str,
    results: list[tuple[str, str]],
    specimen: str,
    sampled: datetime,
    recorded: datetime,
    now: datetime,
    status: str = "F",
) -> str:
    """An HL7 v2.5.1 ORU^R01 as relais/transfer/formats/hl7v2.py renders it (MSH-21 profile, SFT, PID-3 pseudonym and
    INS-NIR with OIDs, ORC/OBR with one order number per test, ORC-12/OBR-16 the pharmacist, ORC-21..23 the pharmacy,
    one OBX per result with OBX-17/18 the device, SPM-2 and SPM-18), built as a string (no parser). ``results``:
    (LOINC, SNOMED CT result) pairs."""
    created, taken, done = _dtm(now), _dtm(sampled), _dtm(recorded)
    oid = sender.oid
    order = _c(series, "RELAIS", oid["order"], "ISO")
    specimen_id = _s(series, "RELAIS", oid["specimen"], "ISO")
    identifiers = [_c(pseudonym, "", "", sender.pseudonym_authority, "PI")]
    if identity["nir"]:
        identifiers.append(_c(_hl7_escape(identity["nir"]), "", "", sender.nir_authority, "NH"))
    pid = {
        1: "1",
        3: "~".join(identifiers),
        5: _c(_hl7_escape(identity["last_name"]), _hl7_escape(identity["first_names"]), "", "", "", "", "L"),
        7: f"{identity['date_of_birth']:%Y%m%d}",
        8: identity["sex"],
    }
    if identity["address_line"] or identity["city"] or identity["postcode"]:
        country = COUNTRY_ALPHA3[identity["country"]] if identity["country"] else ""
        pid[11] = _c(
            _hl7_escape(identity["address_line"]), "", _hl7_escape(identity["city"]), "", _hl7_escape(identity["postcode"]), country, "H"
        )
    telecoms = []
    if identity["phone"]:
        telecoms.append(_phone_xtn(identity["phone"]))
    if identity["email"]:
        telecoms.append(_c("", "NET", "Internet", _hl7_escape(identity["email"])))
    if telecoms:
        pid[13] = "~".join(telecoms)
    first_loinc = results[0][0]
    segments = [
        _segment("MSH", {**sender.msh_fields, 7: created, 10: control_id}),
        sender.sft,
        _segment("PID", pid),
        _segment("ORC", {1: "RE", 2: order, 3: order, 9: done, 12: sender.provider, 21: sender.xon, 22: sender.xad, 23: sender.xtn}),
        _segment(
            "OBR",
            {
                1: "1",
                2: order,
                3: order,
                4: _c(first_loinc, LOINC_DISPLAY.get(first_loinc, "SARS-CoV-2 Ag rapid immunoassay"), "LN"),
                7: taken,
                16: sender.provider,
                22: done,
                25: status,
            },
        ),
    ]
    method = _c(_hl7_escape(device), _hl7_escape(device_name), "99EUDEVICE")
    instance = _c(_hl7_escape(device), "RELAIS", oid["device"], "ISO")
    for number, (loinc, code) in enumerate(results, 1):
        fields = {
            1: str(number),
            2: "CWE",
            3: _c(loinc, LOINC_DISPLAY.get(loinc, "SARS-CoV-2 Ag rapid immunoassay"), "LN"),
            5: _c(code, RESULT_DISPLAY.get(code, code), "SCT"),
            11: status,
            14: taken,
            17: method,
            18: instance,
            19: done,
            23: sender.xon,
            24: sender.xad,
        }
        segments.append(_segment("OBX", fields))
    kind = _c(specimen, SPECIMEN_DISPLAY.get(specimen, specimen), "SCT")
    segments.append(_segment("SPM", {1: "1", 2: _c(specimen_id, specimen_id), 4: kind, 17: taken, 18: taken}))
    return "\r".join(segments)


class Table:
    """An INSERT naming every column of ``table``: the given ones vary per row, the others get a fixed filler."""

    def __init__(self, con: sqlite3.Connection, table: str, columns: Iterable[str], **fixed: Any) -> None:
        info = con.execute(f"PRAGMA table_info({table})").fetchall()  # cid, name, type, notnull, default, pk
        self.columns = list(columns)
        extra = [row for row in info if row[1] not in self.columns and not (row[5] and row[2].upper() == "INTEGER")]
        missing = set(self.columns) - {row[1] for row in info}
        if missing:
            raise SystemExit(f"floor: {table} has no column {sorted(missing)}: update bench/floor.py")
        self.filler = tuple(
            fixed.get(row[1], ("" if "CHAR" in row[2].upper() or "TEXT" in row[2].upper() else 0) if row[3] else None) for row in extra
        )
        names = [*self.columns, *(row[1] for row in extra)]
        self.sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608
        self.rows: list[tuple[Any, ...]] = []

    def add(self, *values: Any) -> None:
        self.rows.append(values + self.filler)

    def flush(self, con: sqlite3.Connection) -> None:
        con.executemany(self.sql, self.rows)
        self.rows = []


def _sql_time(value: datetime) -> str:
    return str(value.astimezone(UTC).replace(tzinfo=None))  # what Django's SQLite backend stores


def fresh_schema_db(folder: Path) -> Path:
    """A freshly migrated Relais database with the demo data (for running this script on its own)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from intake_throughput import App

    app = App(folder)
    app.setup()
    return app.db


def _session(*, schema_db: Path, folder: Path) -> Generator[int, bytes, None]:
    """Set up a copy of ``schema_db``, then record each JSON batch sent in; yields the results accepted from each."""
    db = folder / "floor.sqlite3"
    source = sqlite3.connect(f"file:{schema_db}?mode=ro", uri=True)
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)  # one caller at a time, maybe not its creator
    source.backup(con)
    source.close()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        con.execute(f"PRAGMA {pragma}")
    pharmacy_id, pharmacy_name, finess, address_line, postcode, city, phone = con.execute(
        "SELECT id, name, finess, address_line, postcode, city, phone FROM accounts_pharmacy WHERE finess = '750000010'"
    ).fetchone()
    user_id, rpps, full_name = con.execute("SELECT id, rpps, full_name FROM accounts_user LIMIT 1").fetchone()
    devices = {row[0] for row in con.execute("SELECT device_id FROM screenings_device WHERE active")}
    loinc = dict(con.execute("SELECT device_id, loinc_code FROM screenings_device"))
    device_names = dict(con.execute("SELECT device_id, name FROM screenings_device"))
    sender = Hl7Sender(
        pharmacy_id=str(uuid.UUID(pharmacy_id)),
        finess=finess,
        name=pharmacy_name,
        address_line=address_line,
        postcode=postcode,
        city=city,
        phone=phone,
        recorder_id=str(uuid.UUID(user_id)),
        recorder_rpps=rpps,
        recorder_full_name=full_name,
    )
    blind_key, data_key, retention_key = os.urandom(32), os.urandom(32), os.urandom(32)
    data_id, retention_id = "dk" + secrets.token_hex(8), "dk" + secrets.token_hex(8)
    ciphers = {data_id: AESGCM(data_key), retention_id: AESGCM(retention_key)}
    signer = ec.generate_private_key(ec.SECP256R1())
    kid = os.urandom(8)

    def enc(key_id: str, table: str, column: str, row_id: uuid.UUID | str, value: str) -> str:
        nonce = os.urandom(12)
        blob = ciphers[key_id].encrypt(nonce, value.encode(), f"{table}|{column}|{row_id}".encode())
        return f"v1.{key_id}.{base64.b64encode(nonce + blob).decode()}"

    def index(purpose: str, *parts: str) -> str:
        return hmac.new(blind_key, "\x1f".join([purpose, str(uuid.UUID(pharmacy_id)), *parts]).encode(), hashlib.sha256).hexdigest()

    # relais.core.blind_index.search_indexer: a per-pharmacy key, 16-bit truncated HMACs (the patient search's indexes).
    search_key = hmac.new(blind_key, f"search-key\x1f{uuid.UUID(pharmacy_id)}".encode(), hashlib.sha256).digest()

    def search_index(kind: str, value: str) -> str:
        if not value:
            return ""
        digest = hmac.digest(search_key, (kind + "\x1f" + value).encode(), "sha256")
        return f"{int.from_bytes(digest[:8], 'big') >> 48:04x}"

    search_columns = (*name_search_values("", "", None), "phone_index")

    patients = Table(
        con,
        "patients_patient",
        [
            "id",
            "pharmacy_id",
            *PERSONAL,
            "nir_index",
            "name_dob_index",
            "identity_index",
            *search_columns,
            "created_at",
            "updated_at",
            "created_by_id",
            "retention_key",
        ],
    )
    screenings = Table(
        con,
        "screenings_screening",
        [
            "id",
            "series_id",
            "version",
            "is_current",
            "specimen_type",
            "sampled_at",
            "status",
            "correction_reason",
            "recorded_at",
            "device_id",
            "patient_id",
            "pharmacy_id",
            "recorded_by_id",
            "information_notice_given",
            "identity_withheld",
        ],
    )
    results = Table(con, "screenings_screeningresult", ["analyte", "loinc_code", "result", "screening_id"])
    certificates = Table(
        con,
        "certificates_certificate",
        ["id", "series_id", "uvci", "uvci_hash", "hc1", "issued_at", "expires_at", "pharmacy_id", "screening_id"],
    )
    outbox = Table(
        con,
        "transfer_outboxmessage",
        ["id", "message_id", "series_id", "version", "status", "next_attempt_at", "created_at", "pharmacy_id", "screening_id"],
    )
    links = Table(
        con,
        "notify_resultlink",
        ["id", "token_hash", "series_id", "created_at", "expires_at", "created_by_id", "patient_id", "pharmacy_id"],
    )
    notes = Table(
        con,
        "notify_notification",
        [
            "id",
            "series_id",
            "kind",
            "channel",
            "address",
            "link_url",
            "status",
            "next_attempt_at",
            "created_at",
            "created_by_id",
            "patient_id",
            "pharmacy_id",
            "screening_id",
            "link_id",
            "retention_key",
        ],
    )
    events = Table(
        con,
        "audit_auditevent",
        [
            "id",
            "public_id",
            "occurred_at",
            "actor_id",
            "actor_label",
            "actor_role",
            "pharmacy_id",
            "action",
            "object_type",
            "object_ids",
            "detail",
            "request_id",
            "client_ip",
            "channel",
        ],
    )
    subjects = Table(con, "audit_auditsubject", ["event_id", "object_id"])
    items = Table(con, "submissions_submissionitem", ["id", "position", "status", "errors", "screening_id", "submission_id"])
    submissions = Table(
        con,
        "submissions_submission",
        [
            "id",
            "kind",
            "status",
            "request_hash",
            "file_name",
            "total",
            "processed",
            "accepted",
            "pharmacy_id",
            "submitted_by_id",
            "language",
            "created_at",
            "started_at",
        ],
    )
    tables = [submissions, patients, screenings, results, certificates, outbox, links, notes, events, subjects, items]
    label = "api-bench@clients.relais.invalid"

    accepted = 0
    body = yield 0
    while True:
        now = datetime.now(UTC)
        at = _sql_time(now)
        request_id = uuid.uuid4().hex
        next_event = (con.execute("SELECT COALESCE(MAX(id), 0) FROM audit_auditevent").fetchone()[0]) + 1

        def audit(action: str, object_type: str, ids: list[str], at: str = at, request_id: str = request_id) -> None:
            nonlocal next_event
            events.add(
                next_event,
                uuid.uuid4().hex,
                at,
                user_id,
                label,
                "pharmacist",
                pharmacy_id,
                action,
                object_type,
                json.dumps(ids),
                "{}",
                request_id,
                "127.0.0.1",
                "api",
            )
            for object_id in dict.fromkeys(ids):
                subjects.add(next_event, uuid.UUID(object_id).hex)
            next_event += 1

        submission = uuid.uuid4()
        batch = json.loads(body)["items"]
        request_hash = hashlib.sha256(body).hexdigest()
        submissions.add(
            submission.hex,
            "batch",
            "running",
            request_hash,
            enc(data_id, "submissions_submission", "file_name", submission, ""),
            len(batch),
            0,
            0,
            pharmacy_id,
            user_id,
            "fr",
            at,
            at,
        )
        audit("submission.batch", "submission", [str(submission)])
        checked = []
        for position, raw in enumerate(batch):
            try:
                checked.append((position, validate(raw, devices=devices, now=now)))
            except (Invalid, ValueError, KeyError, TypeError):
                items.add(
                    uuid.uuid4().hex,
                    position,
                    "rejected",
                    enc(data_id, "submissions_submissionitem", "errors", "x", "[]"),
                    None,
                    submission.hex,
                )
        keys = {}
        for position, data in checked:
            who = data["identity"]
            first = normalise_name(who["first_names"].split()[0])
            last = normalise_name(who["last_name"])
            keys[position] = (
                index("identity", last, first, who["date_of_birth"].isoformat()),
                index("name-dob", last, who["date_of_birth"].isoformat()),
                index("nir", who["nir"].replace(" ", "").upper()) if who["nir"] else "",
            )
        marks = ",".join("?" * len(keys))
        known = dict(
            con.execute(
                f"SELECT identity_index, id FROM patients_patient WHERE pharmacy_id = ? AND identity_index IN ({marks})",  # noqa: S608
                [pharmacy_id, *(k[0] for k in keys.values())],
            ).fetchall()
        )
        for position, data in checked:
            who = data["identity"]
            identity_key, name_key, nir_key = keys[position]
            if identity_key in known:
                continue  # the benchmark posts new patients only: an existing one would take the duplicate path
            patient, screening, series = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            plain = {**who, "date_of_birth": who["date_of_birth"].isoformat()}
            patients.add(
                patient.hex,
                pharmacy_id,
                *(enc(retention_id, "patients_patient", c, patient, plain[c]) for c in PERSONAL),
                nir_key,
                name_key,
                identity_key,
                *(search_index(*kv) for kv in name_search_values(who["last_name"], who["first_names"], who["date_of_birth"]).values()),
                search_index("phone", who["phone"]),
                at,
                at,
                user_id,
                retention_id,
            )
            audit("patient.create", "patient", [str(patient)])
            screenings.add(
                screening.hex,
                series.hex,
                1,
                1,
                data["specimen"],
                _sql_time(data["sampled_at"]),
                "final",
                enc(data_id, "screenings_screening", "correction_reason", screening, ""),
                at,
                data["device"],
                patient.hex,
                pharmacy_id,
                user_id,
                1,
                0,
            )
            for analyte, code in data["results"].items():
                results.add(analyte, loinc[data["device"]], code, screening.hex)
            audit("screening.create", "screening", [str(screening), str(patient)])
            message_id = secrets.token_hex(10)
            outbox.add(uuid.uuid4().hex, message_id, series.hex, 1, "pending", at, at, pharmacy_id, screening.hex)
            code = data["results"].get("sars-cov-2", "")
            hl7_message(
                sender=sender,
                control_id=message_id,
                identity=who,
                # blind_index.patient_pseudonym: keyed per destination
                pseudonym=index("pseudonym-destination", "sidep", str(patient))[:32],
                series=str(series),
                device=data["device"],
                device_name=device_names[data["device"]],
                results=[(loinc[data["device"]], result) for result in data["results"].values()],
                specimen=data["specimen"],
                sampled=data["sampled_at"],
                recorded=now,
                now=now,
            )
            if code in ("260373001", "260415000"):
                certificate, uvci = uuid.uuid4(), new_uvci(country="FR", issuer_prefix="RELAIS")
                issued = now.replace(microsecond=0)
                payload = {
                    "ver": "1.3.0",
                    "nam": {
                        "fn": who["last_name"],
                        "fnt": transliterate(who["last_name"]),
                        "gn": who["first_names"],
                        "gnt": transliterate(who["first_names"]),
                    },
                    "dob": plain["date_of_birth"],
                    "t": [
                        {
                            "tg": "840539006",
                            "tt": "LP217198-3",
                            "ma": data["device"],
                            "sc": data["sampled_at"].astimezone(UTC).replace(microsecond=0).isoformat(),
                            "tr": code,
                            "tc": pharmacy_name[:80],
                            "co": "FR",
                            "is": "Relais",
                            "ci": uvci,
                        }
                    ],
                }
                hc1 = sign_hc1(
                    payload, signer_key=signer, kid=kid, issuer_country="FR", issued_at=issued, expires_at=issued + timedelta(days=30)
                )
                uvci_hash = base64.b64encode(hashlib.sha256(uvci.encode()).digest()[:16]).decode()
                certificates.add(
                    certificate.hex,
                    series.hex,
                    uvci,
                    uvci_hash,
                    enc(data_id, "certificates_certificate", "hc1", certificate, hc1),
                    _sql_time(issued),
                    _sql_time(issued + timedelta(days=30)),
                    pharmacy_id,
                    screening.hex,
                )
            contacts = [(channel, address) for channel, address in (("email", who["email"]), ("sms", who["phone"])) if address]
            if contacts:
                link, token = uuid.uuid4(), secrets.token_urlsafe(32)
                links.add(
                    link.hex,
                    hashlib.sha256(token.encode()).hexdigest(),
                    series.hex,
                    at,
                    _sql_time(now + timedelta(days=10)),
                    user_id,
                    patient.hex,
                    pharmacy_id,
                )
                url = f"http://127.0.0.1:8000/r/{token}/"
                for channel, address in contacts:
                    note = uuid.uuid4()
                    notes.add(
                        note.hex,
                        series.hex,
                        "result",
                        channel,
                        enc(retention_id, "notify_notification", "address", note, address),
                        enc(retention_id, "notify_notification", "link_url", note, url),
                        "pending",
                        at,
                        at,
                        user_id,
                        patient.hex,
                        pharmacy_id,
                        screening.hex,
                        link.hex,
                        retention_id,
                    )
                audit("notification.queue", "screening", [str(screening), str(patient)])
            item_id = uuid.uuid4()
            items.add(
                item_id.hex,
                position,
                "accepted",
                enc(data_id, "submissions_submissionitem", "errors", item_id, "[]"),
                screening.hex,
                submission.hex,
            )
            accepted += 1
        audit("submission.done", "submission", [str(submission)])
        con.execute("BEGIN")
        for table in tables:
            table.flush(con)
        con.execute(
            "UPDATE submissions_submission SET status = 'done', processed = total, accepted = ?, finished_at = ? WHERE id = ?",
            (len(checked), at, submission.hex),
        )
        con.execute("COMMIT")
        done, accepted = accepted, 0
        body = yield done


class Floor:
    """The floor, one batch at a time (bench/run.py alternates floor and app batches so that both see the same load)."""

    def __init__(self, *, schema_db: Path, folder: Path) -> None:
        self.db = folder / "floor.sqlite3"
        self._session = _session(schema_db=schema_db, folder=folder)
        next(self._session)
        self.results = 0
        self.seconds = 0.0

    def batch(self, body: bytes) -> tuple[int, float]:
        """Record one JSON batch: results accepted and wall time."""
        started = time.perf_counter()
        accepted = self._session.send(body)
        took = time.perf_counter() - started
        self.results += accepted
        self.seconds += took
        return accepted, took

    @property
    def per_s(self) -> float:
        return self.results / self.seconds if self.seconds else 0.0

    def close(self) -> dict[str, int]:
        """Rows in the floor's database (to compare with the app's)."""
        self._session.close()
        con = sqlite3.connect(self.db)
        try:
            return {
                t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("patients_patient", "certificates_certificate", "notify_notification", "audit_auditevent")
            }
        finally:
            con.close()


def run(*, bodies: list[bytes], schema_db: Path, folder: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Record every item of ``bodies`` (JSON batches) on a copy of ``schema_db``; results per second, wall time."""
    floor = Floor(schema_db=schema_db, folder=folder)
    for number, body in enumerate(bodies, 1):
        floor.batch(body)
        if progress:
            progress(f"  floor batch {number}/{len(bodies)}: {floor.per_s:.0f} results/s so far")
    rows = floor.close()
    return {"results": floor.results, "seconds": floor.seconds, "per_s": floor.per_s, "rows": rows}


def make_bodies(*, batches: int, size: int, offset: int) -> list[bytes]:
    sys.path.insert(0, str(ROOT / "bench"))
    from intake_throughput import item

    sampled = datetime.now(UTC) - timedelta(hours=1)
    return [json.dumps({"items": [item(offset + b * size + i, sampled) for i in range(size)]}).encode() for b in range(batches)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--schema-from", type=Path, default=None, help="a migrated Relais SQLite database (default: migrate one)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="relais-floor-"))
    try:
        schema = args.schema_from or fresh_schema_db(folder / "app")
        bodies = make_bodies(batches=max(1, args.results // args.batch), size=args.batch, offset=0)
        figure = run(bodies=bodies, schema_db=schema, folder=folder, progress=lambda line: print(line, flush=True))
        print(f"floor: {figure['results']} results in {figure['seconds']:.2f} s = {figure['per_s']:.0f} results/s (rows: {figure['rows']})")
        print(f"command: .venv/bin/python bench/floor.py --results {args.results} --batch {args.batch}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
