"""HL7 v2.5.1 ORU^R01 rendering for SI-DEP, batches (FHS/BHS/BTS/FTS) and acknowledgements.

Messages are composed as ER7 text here, with our own escaping. The test suite proves the renderer against
hl7apy (STRICT parse and ``Message.validate()``, tests/transfer/test_renderer_proof.py, hypothesis over names in
every script and every delimiter); at run time only check_structure runs (microseconds, where hl7apy took 16 ms a
message), and a message it refuses never leaves this module (RenderError). ``validate_message`` (hl7apy) stays for
tests and tools. We do not build through hl7apy's element tree because its serialiser does not escape reliably (a
value containing a literal ``\\F\\`` or ``\\X..\\`` is passed through or double-escaped), and escaping is the one
thing that must never break a segment.

Field choices (receiver side, keep stable). The structure follows the HL7 v2.5.1 ELR implementation guide (Release 1,
"PHLabReport-NoAck"): every entity identifier is an EI/HD with a namespace, an OID and "ISO"; the OIDs are those of
relais.transfer.identifiers (Relais's own arcs under settings.RELAIS_OID_ROOT, the French national ones for FINESS,
RPPS and INS-NIR). Each rule below is checked field by field by tests/transfer/test_elr_hl7.py with python-hl7.
  MSH-3  RELAIS ^ <application OID> ^ ISO
  MSH-4  <FINESS> ^ 2.25.<int(pharmacy UUID)> ^ ISO: the pharmacy itself (namespace its FINESS, universal id an OID of
    this pharmacy, ITU-T X.667 UUID-derived: unique without registration and unchanged if RELAIS_OID_ROOT changes,
    where a "facility" sub-arc of the root would move with it); the FINESS registry's OID is in ORC-21 (XON-6)
  MSH-5/6 the destination's receiving_application / receiving_facility (settings.RELAIS_TRANSFER, "NAME" or
    "NAME^OID^ISO", checked at start-up by relais.transfer.hd); default SIDEP: SI-DEP's OIDs are not published
  MSH-10 the outbox message id: a new one per version and per destination, the same for every retry
  MSH-21 PHLabReport-NoAck ^ ELR251R1_Rcvr_Prof ^ 2.16.840.1.113883.9.11 ^ ISO (the ELR 2.5.1 R1 profile)
  SFT    Relais (organisation, with the application OID) | version (pyproject) | Relais | relais-<version>
  PID-3  pseudonym ^^^ RELAIS&<pseudonym OID>&ISO ^ PI; the NIR ^^^ INS-NIR&1.2.250.1.213.1.4.8&ISO ^ NH
  ORC-2/OBR-2 placer and ORC-3/OBR-3 filler: str(series_id) ^ RELAIS ^ <order OID> ^ ISO, the SAME for every version
    of one test (a receiver matches a correction or removal to the original on OBR-3, then OBX-3/OBX-4)
  ORC-12/OBR-16 ordering provider: the pharmacist who recorded the version, XCN
    8<RPPS> ^ family ^ given ^^^^^^ RPPS&1.2.250.1.71.4.2.1&ISO ^^^^ RPPS (IdNat_PS: "8" + the 11-digit RPPS);
    without RPPS: <account id> ^ family ^ given ^^^^^^ RELAIS&<staff OID>&ISO ^^^^ RI; absent when the account is gone
  ORC-21/22 ordering facility name (XON: XON-6 FINESS&1.2.250.1.71.4.2.2&ISO, XON-7 FINEG, XON-10 the FINESS) and address
  ORC-23 ordering facility phone: ^WPN^PH^^<country>^<area>^<local>^^^^^<E.164> (structured XTN, as PID-13), only when
    the pharmacy has a phone (Pharmacy.phone); absent otherwise, never empty components
  OBR-25 F final, C corrected or removed;  OBX-11 F final, C corrected, D removed (deleted)
  OBX-17 device: EU device id ^ device name ^ 99EUDEVICE (local coding system, HL7 table 0396 "99zzz")
  OBX-18 equipment instance: <device id>[/<kit lot>] ^ RELAIS ^ <device OID> ^ ISO (results only)
  PID-13 phone: ^PRN^CP|PH^^<country>^<area>^<local>^^^^^<E.164> (XTN-5/6/7 numeric, XTN-12 unformatted kept)
  SPM-2  specimen id EIP: <series_id>&RELAIS&<specimen OID>&ISO for placer and filler parts (stable per test)
  SPM-17 collection time; SPM-18 received time (= sampling: the test is done where the specimen is taken)
  FHS/BHS: -3 the application HD; -4 the sending facility: the messages' MSH-4 when they share it (one pharmacy),
    else the application HD RELAIS ^ <application OID> ^ ISO (the Relais service assembled the batch and is its
    sender: no facility of the deployment is invented); -5/6 the messages' MSH-5/6 (one destination per batch);
    -11 distinct file and batch control ids

Observations after the result OBX(s), in this order, each only when recorded (a test recorded before they existed, or
without them, renders exactly as before). They share the result's OBX-11 (F/C/D) and OBX-14 (sampling time), so a
correction or removal carries them too, and each has its own OBX-3 (a receiver matches on OBR-3 plus OBX-3/OBX-4).
  Ask-at-order-entry (AOE) answers, as the US ELR practice for COVID-19 (HHS/CDC AOE list, ReportStream's covid-19
  schema, SimpleReport) sends them: OBX segments under the same OBR, after the results, coded in LOINC:
    95419-8 "Has symptoms related to condition of interest"  CWE  Y^Yes^HL70136 | N^No^HL70136 | UNK^Unknown^NULLFL
    65222-2 "Date and time of symptom onset"                 DT   YYYYMMDD, only with symptoms "yes" and a date
  Onset: 65222-2, the code of the CDC AOE list that ReportStream and SimpleReport send, rather than 11368-8 "Illness
  or injury onset date and time" (an older, general code): one constant, AOE_ONSET_LOINC, to change if SI-DEP asks.
  OBX-29 "QST" (observation type, HL7 v2.8.2 and LRI practice) does not exist in v2.5.1: OBX has 25 fields there and
  hl7apy STRICT refuses a 29th, so, as the ELR 2.5.1 guide does, an AOE answer is told from a result by its OBX-3 code.
  The test kit's lot and expiry: v2.5.1 ORU_R01 has no field for a kit's lot (OBX-17 is the method/device, OBX-18 the
  equipment instance, which issue 16 keeps for the device instance; INV with its lot and expiry is not part of
  ORU_R01; SimpleReport sends no lot at all). They go as two more OBX, coded with the GS1 Application Identifiers the
  values come from (the box's DataMatrix), under a local coding system (HL7 table 0396 "99zzz"):
    10^Test kit lot number (GS1 AI 10)^99GS1       ST   as printed on the box
    17^Test kit expiration date (GS1 AI 17)^99GS1  DT   YYYYMMDD
"""

from __future__ import annotations

import functools
import re
import secrets
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import phonenumbers
from django.conf import settings

from relais.screenings.vocab import RESULTS, SPECIMENS
from relais.transfer.hd import DEFAULT_RECEIVER, receiving_hds
from relais.transfer.identifiers import FINESS_OID, INS_NIR_OID, RPPS_OID, namespace
from relais.transfer.payload import PatientPart, ResultPart, TransferPayload, UnmappableValue

ENCODING_CHARACTERS = "^~\\&"
SENDING_APPLICATION = "RELAIS"
RECEIVING_APPLICATION = DEFAULT_RECEIVER  # MSH-5/6 of a destination that names no receiver (see _receivers)
RECEIVING_FACILITY = DEFAULT_RECEIVER
NIR_OID = INS_NIR_OID
NIR_AUTHORITY = "INS-NIR"
RPPS_AUTHORITY = "RPPS"
# ELR 2.5.1 Release 1 message profile (MSH-21), as ELR senders and CDC's ReportStream write it.
ELR_PROFILE = ("PHLabReport-NoAck", "ELR251R1_Rcvr_Prof", "2.16.840.1.113883.9.11", "ISO")
SOFTWARE_VENDOR = "Relais"
SOFTWARE_PRODUCT = "Relais"
DEVICE_CODING_SYSTEM = "99EUDEVICE"
AOE_SYMPTOMS_LOINC = ("95419-8", "Has symptoms related to condition of interest")
AOE_ONSET_LOINC = ("65222-2", "Date and time of symptom onset")
# screenings.vocab.SYMPTOMS -> HL7 table 0136 (yes/no), and UNK from the v3 NullFlavor code system (HL7 table 0396 NULLFL).
AOE_SYMPTOM_ANSWERS = {"yes": ("Y", "Yes", "HL70136"), "no": ("N", "No", "HL70136"), "unknown": ("UNK", "Unknown", "NULLFL")}
KIT_CODING_SYSTEM = "99GS1"  # GS1 Application Identifiers, as a local coding system
KIT_LOT_CODE = ("10", "Test kit lot number (GS1 AI 10)")
KIT_EXPIRY_CODE = ("17", "Test kit expiration date (GS1 AI 17)")
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})

OBX_STATUS = {"final": "F", "corrected": "C", "removed": "D"}
OBR_STATUS = {"final": "F", "corrected": "C", "removed": "C"}  # a removal corrects the order: its OBX are deleted (D)
SEX_CODES = frozenset({"F", "M", "O", "U"})

# hl7apy (STRICT) limits for the datatypes we fill with free text: ST components hold at most 199
# characters once escaped. Longer identity values are rejected, longer labels are shortened.
ST_MAX = 199
CONTROL_ID_MAX = 20  # MSH-10 in v2.5.1
_CONTROL_ID = re.compile(r"[A-Za-z0-9._-]{1,20}")
_FINESS = re.compile(r"[0-9A-Z]{9}")
_LOINC = re.compile(r"\d{1,7}-\d")
# Every line/segment/MLLP framing character (C0 controls: CR, LF, VT 0x0B, FS 0x1C, ...), DEL, and
# the Unicode line breaks some readers split on. They never belong in a name or an address.
_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")

# ISO 3166-1 alpha-2 -> alpha-3, every code accepted by relais.core.validators.country_codes() (XK: EU usage XKX).
_COUNTRIES = """
AD:AND AE:ARE AF:AFG AG:ATG AI:AIA AL:ALB AM:ARM AO:AGO AQ:ATA AR:ARG AS:ASM AT:AUT AU:AUS AW:ABW AX:ALA AZ:AZE
BA:BIH BB:BRB BD:BGD BE:BEL BF:BFA BG:BGR BH:BHR BI:BDI BJ:BEN BL:BLM BM:BMU BN:BRN BO:BOL BQ:BES BR:BRA BS:BHS
BT:BTN BV:BVT BW:BWA BY:BLR BZ:BLZ CA:CAN CC:CCK CD:COD CF:CAF CG:COG CH:CHE CI:CIV CK:COK CL:CHL CM:CMR CN:CHN
CO:COL CR:CRI CU:CUB CV:CPV CW:CUW CX:CXR CY:CYP CZ:CZE DE:DEU DJ:DJI DK:DNK DM:DMA DO:DOM DZ:DZA EC:ECU EE:EST
EG:EGY EH:ESH ER:ERI ES:ESP ET:ETH FI:FIN FJ:FJI FK:FLK FM:FSM FO:FRO FR:FRA GA:GAB GB:GBR GD:GRD GE:GEO GF:GUF
GG:GGY GH:GHA GI:GIB GL:GRL GM:GMB GN:GIN GP:GLP GQ:GNQ GR:GRC GS:SGS GT:GTM GU:GUM GW:GNB GY:GUY HK:HKG HM:HMD
HN:HND HR:HRV HT:HTI HU:HUN ID:IDN IE:IRL IL:ISR IM:IMN IN:IND IO:IOT IQ:IRQ IR:IRN IS:ISL IT:ITA JE:JEY JM:JAM
JO:JOR JP:JPN KE:KEN KG:KGZ KH:KHM KI:KIR KM:COM KN:KNA KP:PRK KR:KOR KW:KWT KY:CYM KZ:KAZ LA:LAO LB:LBN LC:LCA
LI:LIE LK:LKA LR:LBR LS:LSO LT:LTU LU:LUX LV:LVA LY:LBY MA:MAR MC:MCO MD:MDA ME:MNE MF:MAF MG:MDG MH:MHL MK:MKD
ML:MLI MM:MMR MN:MNG MO:MAC MP:MNP MQ:MTQ MR:MRT MS:MSR MT:MLT MU:MUS MV:MDV MW:MWI MX:MEX MY:MYS MZ:MOZ NA:NAM
NC:NCL NE:NER NF:NFK NG:NGA NI:NIC NL:NLD NO:NOR NP:NPL NR:NRU NU:NIU NZ:NZL OM:OMN PA:PAN PE:PER PF:PYF PG:PNG
PH:PHL PK:PAK PL:POL PM:SPM PN:PCN PR:PRI PS:PSE PT:PRT PW:PLW PY:PRY QA:QAT RE:REU RO:ROU RS:SRB RU:RUS RW:RWA
SA:SAU SB:SLB SC:SYC SD:SDN SE:SWE SG:SGP SH:SHN SI:SVN SJ:SJM SK:SVK SL:SLE SM:SMR SN:SEN SO:SOM SR:SUR SS:SSD
ST:STP SV:SLV SX:SXM SY:SYR SZ:SWZ TC:TCA TD:TCD TF:ATF TG:TGO TH:THA TJ:TJK TK:TKL TL:TLS TM:TKM TN:TUN TO:TON
TR:TUR TT:TTO TV:TUV TW:TWN TZ:TZA UA:UKR UG:UGA UM:UMI US:USA UY:URY UZ:UZB VA:VAT VC:VCT VE:VEN VG:VGB VI:VIR
VN:VNM VU:VUT WF:WLF WS:WSM XK:XKX YE:YEM YT:MYT ZA:ZAF ZM:ZMB ZW:ZWE
"""
COUNTRY_ALPHA3: Mapping[str, str] = dict(pair.split(":") for pair in _COUNTRIES.split())  # type: ignore[misc]


class RenderError(RuntimeError):
    """The rendered text failed hl7apy's strict validation: a bug in this renderer, not bad data."""


class MalformedAck(ValueError):
    """A reply that is not a parseable HL7 acknowledgement (no MSH, no/several MSA, unknown code...)."""


@dataclass(frozen=True)
class Ack:
    code: str  # AA | AE | AR | CA | CE | CR (MSA-1)
    control_id: str  # MSA-2: the MSH-10 of the acknowledged message
    text: str  # MSA-3 and ERR diagnostics (ERR-8, ERR-7, ERR-3 text), "; "-joined

    @property
    def accepted(self) -> bool:
        return self.code in {"AA", "CA"}


# --- escaping --------------------------------------------------------------------------------


def escape(value: str) -> str:
    """ER7-escape free text; line breaks and other control characters become spaces."""
    value = _BREAKS.sub(" ", value)
    return value.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\").replace("~", "\\R\\")


def unescape(value: str, encoding_characters: str = ENCODING_CHARACTERS, field_separator: str = "|") -> str:
    """Inverse of escape() for the standard sequences; \\Xhh..\\ is decoded as UTF-8, \\.br\\ as a newline."""
    comp, rep, esc, sub = encoding_characters[0], encoding_characters[1], encoding_characters[2], encoding_characters[3]
    if esc not in value:
        return value
    simple = {"F": field_separator, "S": comp, "T": sub, "R": rep, "E": esc, ".br": "\n", "H": "", "N": ""}
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if end == -1:
            out.append(ch)
            i += 1
            continue
        seq = value[i + 1 : end]
        if seq in simple:
            out.append(simple[seq])
        elif seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1 and all(c in "0123456789abcdefABCDEF" for c in seq[1:]):
            out.append(bytes.fromhex(seq[1:]).decode("utf-8", errors="replace"))
        else:
            out.append(value[i : end + 1])
        i = end + 1
    return "".join(out)


def _text(value: str, field: str) -> str:
    """Identity text: escaped, and rejected (never cut) if too long for the datatype."""
    escaped = escape(value)
    if len(escaped) > ST_MAX:
        raise UnmappableValue(field, value)
    return escaped


def _label(value: str, limit: int = ST_MAX) -> str:
    """Descriptive text (names of things, displays): escaped and shortened to fit."""
    escaped = escape(value)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    size = 0
    for ch in value:
        piece = escape(ch)
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


# --- ER7 composition --------------------------------------------------------------------------


def _join(separator: str, parts: Iterable[str]) -> str:
    return separator.join(parts).rstrip(separator)


def _c(*components: str) -> str:
    """Components of a field (already escaped), trailing empty ones dropped."""
    return _join("^", components)


def _s(*subcomponents: str) -> str:
    return _join("&", subcomponents)


def _segment(name: str, fields: Mapping[int, str]) -> str:
    """A segment from {field number: ER7 value}; MSH/FHS/BHS numbering counts the field separator as field 1."""
    first = 2 if name in {"MSH", "FHS", "BHS"} else 1
    last = max(fields, default=first - 1)
    values = [fields.get(n, "") for n in range(first, last + 1)]
    return _join("|", [name, *values])


def _dtm(value: datetime, field: str) -> str:
    """YYYYMMDDHHMMSS+ZZZZ; the payload's datetimes are aware (naive ones are refused)."""
    offset = value.utcoffset()
    if offset is None:
        raise UnmappableValue(field, value)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f"{value.year:04d}{value.month:02d}{value.day:02d}{value.hour:02d}{value.minute:02d}{value.second:02d}{sign}{hours:02d}{mins:02d}"
    )


def _dt(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _control_id(value: str, field: str) -> str:
    if not _CONTROL_ID.fullmatch(value or ""):
        raise UnmappableValue(field, value)
    return value


def _finess(payload: TransferPayload) -> str:
    if not _FINESS.fullmatch(payload.pharmacy_finess or ""):
        raise UnmappableValue("pharmacy_finess", payload.pharmacy_finess)
    return payload.pharmacy_finess


@functools.cache
def software_version() -> str:
    """Relais's version (pyproject.toml, read once), for SFT-2 and SFT-4."""
    try:
        with (Path(__file__).resolve().parents[3] / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0"


def _oid(kind: str) -> str:
    """namespace(kind).oid, cached per OID root (a test may change the setting)."""
    return _oid_under(settings.RELAIS_OID_ROOT, kind)


@functools.lru_cache(maxsize=64)
def _oid_under(root: str, kind: str) -> str:
    return namespace(kind).oid


def _ei(value: str, kind: str) -> str:
    """An EI (entity identifier) of Relais: value ^ RELAIS ^ <OID of this kind of identifier> ^ ISO."""
    return _c(value, SENDING_APPLICATION, _oid(kind), "ISO")


def _ei_sub(value: str, kind: str) -> str:
    """The same EI as subcomponents (inside an EIP)."""
    return _s(value, SENDING_APPLICATION, _oid(kind), "ISO")


def _application_hd() -> str:
    return _c(SENDING_APPLICATION, _oid("application"), "ISO")


def _facility_hd(payload: TransferPayload, finess: str) -> str:
    """MSH-4: the pharmacy, namespace its FINESS, universal id the OID of this pharmacy (see _facility_oid)."""
    return _c(finess, _facility_oid(payload.pharmacy_id), "ISO")


@functools.lru_cache(maxsize=4096)
def _facility_oid(pharmacy_id: str) -> str:
    """2.25.<the pharmacy's UUID as an integer> (ITU-T X.667 UUID-derived OID): unique without registration and
    independent of RELAIS_OID_ROOT, so a pharmacy keeps its OID if the deployment's arc changes."""
    try:
        return f"2.25.{uuid.UUID(pharmacy_id).int}"
    except (ValueError, TypeError, AttributeError):
        raise UnmappableValue("pharmacy_id", pharmacy_id) from None


def _receivers(destination: str) -> tuple[str, str]:
    """(MSH-5, MSH-6) of a destination: its receiving_application and receiving_facility in settings.RELAIS_TRANSFER
    (checked when settings load), SIDEP for what it does not set. "" is the destination in force; a destination not
    in the settings (a Destination built by hand) gets the defaults. Parsed once per value (cached)."""
    config = settings.RELAIS_TRANSFER
    values = config["destinations"].get(destination or config["destination"]) or {}
    return _receivers_of(values.get("receiving_application", DEFAULT_RECEIVER), values.get("receiving_facility", DEFAULT_RECEIVER))


@functools.lru_cache(maxsize=64)
def _receivers_of(application: str, facility: str) -> tuple[str, str]:
    return receiving_hds({"receiving_application": application, "receiving_facility": facility}, where="destination")


def _sft() -> str:
    return _sft_under(settings.RELAIS_OID_ROOT)


@functools.lru_cache(maxsize=8)
def _sft_under(root: str) -> str:
    oid = _oid("application")
    version = escape(software_version())
    organization = _c(SOFTWARE_VENDOR, "", "", "", "", _s(SENDING_APPLICATION, oid, "ISO"), "XX", "", "", oid)
    return _segment("SFT", {1: organization, 2: version, 3: SOFTWARE_PRODUCT, 4: f"relais-{version}"})


_RPPS = re.compile(r"\d{11}")


def _ordering_provider(payload: TransferPayload) -> str:
    """ORC-12/OBR-16 (XCN): the pharmacist who recorded this version; "" when the account is gone (nothing known)."""
    family, given = _label(payload.recorder_family), _label(payload.recorder_given)
    if payload.recorder_rpps:
        if not _RPPS.fullmatch(payload.recorder_rpps):
            raise UnmappableValue("recorder_rpps", payload.recorder_rpps)
        # IdNat_PS: "8" + the RPPS number, under the RPPS OID (ANS registry)
        authority, value, kind = _s(RPPS_AUTHORITY, RPPS_OID, "ISO"), "8" + payload.recorder_rpps, "RPPS"
    elif payload.recorder_id:
        authority, value, kind = _s(SENDING_APPLICATION, _oid("staff"), "ISO"), _text(payload.recorder_id, "recorder_id"), "RI"
    else:
        return ""
    return _c(value, family, given, "", "", "", "", "", authority, "", "", "", kind)


def _equipment_instance(payload: TransferPayload) -> str:
    """OBX-18: the kit used, as an EI: the EU device id and, when recorded, the kit's lot."""
    value = payload.device_id + (f"/{payload.kit_lot}" if payload.kit_lot else "")
    return _ei(_text(value, "device_id"), "device")


_FRENCH_NUMBER = re.compile(r"\+33([1-9])(\d{8})")


@functools.lru_cache(maxsize=4096)
def _phone_xtn(phone: str, use: str = "PRN", equipment: str = "", field: str = "patient.phone") -> str:
    """A structured XTN (ELR): XTN-2 ``use`` (PRN, WPN), XTN-3 ``equipment`` or, when "", CP (mobile) or PH, XTN-5/6/7
    country code, area (national destination) code and local number, digits only (NM), and XTN-12 the unformatted
    E.164 number. Only XTN-12 when the number won't parse. French numbers (most of them) take a fast path:
    +33 Z ABPQMCDU, Z the area code, 6 and 7 mobiles (ARCEP plan); others go through phonenumbers (about 100 us).
    Cached: a patient's versions and retries, a pharmacy's every message, reuse it."""
    unformatted = _text(phone, field)
    french = _FRENCH_NUMBER.fullmatch(phone)
    if french:
        area, local = french.groups()
        return _c("", use, equipment or ("CP" if area in "67" else "PH"), "", "33", area, local, "", "", "", "", unformatted)
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return _c("", use, equipment or "PH", "", "", "", "", "", "", "", "", unformatted)
    national = phonenumbers.national_significant_number(number)
    area_length = phonenumbers.length_of_national_destination_code(number)
    area, local = national[:area_length], national[area_length:]
    mobile = phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    equipment = equipment or ("CP" if mobile else "PH")
    return _c("", use, equipment, "", str(number.country_code), area, local, "", "", "", "", unformatted)


def _pharmacy_xtn(payload: TransferPayload) -> str:
    """ORC-23 ordering facility phone: the pharmacy's number as a work phone (WPN, PH); "" when it has none."""
    return _phone_xtn(payload.pharmacy_phone, "WPN", "PH", "pharmacy_phone") if payload.pharmacy_phone else ""


def _pharmacy_xon(payload: TransferPayload, finess: str) -> str:
    return _c(_label(payload.pharmacy_name), "", "", "", "", _s("FINESS", FINESS_OID, "ISO"), "FINEG", "", "", finess)


def _pharmacy_xad(payload: TransferPayload) -> str:
    return _c(_label(payload.pharmacy_address_line), "", _label(payload.pharmacy_city), "", _label(payload.pharmacy_postcode), "FRA", "B")


def country_alpha3(country: str) -> str:
    """ISO 3166-1 alpha-2 to alpha-3; "" stays ""; anything else unknown raises UnmappableValue."""
    if not country:
        return ""
    try:
        return COUNTRY_ALPHA3[country]
    except KeyError:
        raise UnmappableValue("patient.country", country) from None


# --- ORU^R01 -------------------------------------------------------------------------------------


def _msh(*, facility: str, receivers: tuple[str, str], created_at: datetime, control_id: str, message_type: str) -> str:
    return _segment(
        "MSH",
        {
            2: ENCODING_CHARACTERS,
            3: _application_hd(),
            4: facility,
            5: receivers[0],
            6: receivers[1],
            7: _dtm(created_at, "created_at"),
            9: message_type,
            10: control_id,
            11: "P",
            12: "2.5.1",
            15: "AL",
            16: "NE",
            17: "FRA",
            18: "UNICODE UTF-8",
            21: _c(*ELR_PROFILE),
        },
    )


def _pid(payload: TransferPayload) -> str:
    if not payload.patient_pseudonym:
        raise UnmappableValue("patient_pseudonym", payload.patient_pseudonym)
    authority = _s(SENDING_APPLICATION, _oid("pseudonym"), "ISO")
    pseudonym = _c(_text(payload.patient_pseudonym, "patient_pseudonym"), "", "", authority, "PI")
    patient = payload.patient
    if patient is None:
        # Pseudonymous destination or legacy "no consent" test: a pseudonym and a coded pseudo-name (XPN-7 "S"), nothing else.
        return _segment("PID", {1: "1", 3: pseudonym, 5: _c("ANONYME", "", "", "", "", "", "S")})
    return _segment("PID", _identified_pid_fields(patient, pseudonym))


def _identified_pid_fields(patient: PatientPart, pseudonym: str) -> dict[int, str]:
    if patient.sex not in SEX_CODES:
        raise UnmappableValue("patient.sex", patient.sex)
    identifiers = [pseudonym]
    if patient.nir:
        identifiers.append(_c(_text(patient.nir, "patient.nir"), "", "", _s(NIR_AUTHORITY, NIR_OID, "ISO"), "NH"))
    fields = {
        1: "1",
        3: "~".join(identifiers),
        5: _c(_text(patient.last_name, "patient.last_name"), _text(patient.first_names, "patient.first_names"), "", "", "", "", "L"),
        7: _dt(patient.date_of_birth),
        8: patient.sex,
    }
    country = country_alpha3(patient.country)
    if patient.address_line or patient.city or patient.postcode:
        fields[11] = _c(
            _text(patient.address_line, "patient.address_line"),
            "",
            _text(patient.city, "patient.city"),
            "",
            _text(patient.postcode, "patient.postcode"),
            country,
            "H",
        )
    telecoms = []
    if patient.phone:
        telecoms.append(_phone_xtn(patient.phone))
    if patient.email:
        telecoms.append(_c("", "NET", "Internet", _text(patient.email, "patient.email")))
    if telecoms:
        fields[13] = "~".join(telecoms)
    return fields


def _cwe_result(result: ResultPart, index: int) -> str:
    if result.result_snomed not in RESULTS:
        raise UnmappableValue(f"results[{index}].result_snomed", result.result_snomed)
    return _c(result.result_snomed, _label(result.result_display), "SCT")


def _loinc(result: ResultPart, index: int) -> str:
    if not _LOINC.fullmatch(result.loinc_code or ""):
        raise UnmappableValue(f"results[{index}].loinc_code", result.loinc_code)
    return _c(result.loinc_code, _label(result.loinc_display), "LN")


def _oru_segments(payload: TransferPayload) -> list[str]:
    if payload.status not in OBX_STATUS:
        raise UnmappableValue("status", payload.status)
    if not payload.results:
        raise UnmappableValue("results", payload.results)
    if payload.specimen_snomed not in SPECIMENS:
        raise UnmappableValue("specimen_snomed", payload.specimen_snomed)
    if not payload.device_id:
        raise UnmappableValue("device_id", payload.device_id)
    finess = _finess(payload)
    control_id = _control_id(payload.message_id, "message_id")
    # One order number for every version of the test (placer and filler alike): corrections and removals update it.
    placer = filler = _ei(str(payload.series_id), "order")
    specimen_id = _ei_sub(str(payload.series_id), "specimen")
    provider = _ordering_provider(payload)
    equipment = _equipment_instance(payload)
    sampled_at = _dtm(payload.sampled_at, "sampled_at")
    recorded_at = _dtm(payload.recorded_at, "recorded_at")
    xon = _pharmacy_xon(payload, finess)
    xad = _pharmacy_xad(payload)
    device = _c(_text(payload.device_id, "device_id"), _label(payload.device_name), DEVICE_CODING_SYSTEM)

    segments = [
        _msh(
            facility=_facility_hd(payload, finess),
            receivers=_receivers(payload.destination),
            created_at=payload.created_at,
            control_id=control_id,
            message_type="ORU^R01^ORU_R01",
        ),
        _sft(),
        _pid(payload),
        _segment("ORC", {1: "RE", 2: placer, 3: filler, 9: recorded_at, 12: provider, 21: xon, 22: xad, 23: _pharmacy_xtn(payload)}),
        _segment(
            "OBR",
            # OBR-4: the test ordered; with a multiplex device, the first analyte's LOINC stands for the order.
            {
                1: "1",
                2: placer,
                3: filler,
                4: _loinc(payload.results[0], 0),
                7: sampled_at,
                16: provider,
                22: recorded_at,
                25: OBR_STATUS[payload.status],
            },
        ),
    ]
    for index, result in enumerate(payload.results):
        segments.append(
            _segment(
                "OBX",
                {
                    1: str(index + 1),
                    2: "CWE",
                    3: _loinc(result, index),
                    5: _cwe_result(result, index),
                    11: OBX_STATUS[payload.status],
                    14: sampled_at,
                    17: device,
                    18: equipment,
                    19: recorded_at,
                    23: xon,
                    24: xad,
                },
            )
        )
    status = OBX_STATUS[payload.status]
    for index, (value_type, code, value) in enumerate(_extra_observations(payload), start=len(payload.results) + 1):
        segments.append(_segment("OBX", {1: str(index), 2: value_type, 3: code, 5: value, 11: status, 14: sampled_at}))
    specimen = _c(payload.specimen_snomed, _label(payload.specimen_display), "SCT")
    # SPM-18 received time: the test is done where the specimen is taken, so it is received when sampled.
    segments.append(_segment("SPM", {1: "1", 2: _c(specimen_id, specimen_id), 4: specimen, 17: sampled_at, 18: sampled_at}))
    return segments


def _extra_observations(payload: TransferPayload) -> list[tuple[str, str, str]]:
    """(OBX-2, OBX-3, OBX-5) of the AOE answers and the kit, each only when recorded (see the module docstring)."""
    extra: list[tuple[str, str, str]] = []
    if payload.symptoms:
        answer = AOE_SYMPTOM_ANSWERS.get(payload.symptoms)
        if answer is None:
            raise UnmappableValue("symptoms", payload.symptoms)
        extra.append(("CWE", _c(AOE_SYMPTOMS_LOINC[0], AOE_SYMPTOMS_LOINC[1], "LN"), _c(*answer)))
    if payload.symptom_onset is not None:
        if payload.symptoms != "yes":  # screening_check refuses it: never send an onset without symptoms
            raise UnmappableValue("symptom_onset", payload.symptom_onset)
        extra.append(("DT", _c(AOE_ONSET_LOINC[0], AOE_ONSET_LOINC[1], "LN"), _dt(payload.symptom_onset)))
    if payload.kit_lot:
        extra.append(("ST", _c(KIT_LOT_CODE[0], KIT_LOT_CODE[1], KIT_CODING_SYSTEM), _text(payload.kit_lot, "kit_lot")))
    if payload.kit_expiry is not None:
        extra.append(("DT", _c(KIT_EXPIRY_CODE[0], KIT_EXPIRY_CODE[1], KIT_CODING_SYSTEM), _dt(payload.kit_expiry)))
    return extra


def observation_count(payload: TransferPayload) -> int:
    """How many OBX segments render_oru_r01 writes for ``payload``: one per result, then the AOE and kit ones."""
    return len(payload.results) + len(_extra_observations(payload))


def validate_message(text: str) -> None:
    """Parse back with hl7apy, STRICT, and validate the structure; RenderError if anything is off (tests, tools)."""
    from hl7apy.consts import VALIDATION_LEVEL  # imported here: the send path never loads hl7apy
    from hl7apy.parser import parse_message

    try:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        message.validate()
    except Exception as exc:  # hl7apy raises a dozen unrelated exception types
        raise RenderError(f"HL7 validation failed: {exc}") from exc


# Field separators per segment the renderer never exceeds (its last field: MSH-21, SFT-4, PID-13, ORC-23, OBR-25, OBX-24,
# SPM-18).
_MAX_FIELDS = {"MSH": 20, "SFT": 4, "PID": 13, "ORC": 23, "OBR": 25, "OBX": 24, "SPM": 18}
_FRAMING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def segment_order(observations: int) -> list[str]:
    """The one place saying which segments an ORU^R01 of ours holds, in order: ``observations`` OBX (results first,
    then the AOE and kit observations, all in the OBR's OBSERVATION groups) before the SPM."""
    return ["MSH", "SFT", "PID", "ORC", "OBR", *["OBX"] * observations, "SPM"]


def check_structure(segments: Sequence[str], *, control_id: str, results: int) -> None:
    """Run-time guard (a few microseconds): MSH SFT PID ORC OBR OBX... SPM in that order, ``results`` OBX (every
    observation: results, then AOE and kit) each with a F/C/D status, no framing or control character inside a
    segment, no more fields than the segment has, MSH-10 the message id. RenderError otherwise (a bug in this module,
    never bad data: escaping already ran)."""
    names = [segment[:3] for segment in segments]
    if names != segment_order(results):
        raise RenderError(f"HL7 structure: segments {'-'.join(names)}")
    for segment in segments:
        if segment[3:4] != "|" or _FRAMING.search(segment):
            raise RenderError(f"HL7 structure: malformed {segment[:3]} segment")
        if segment.count("|") > _MAX_FIELDS[segment[:3]]:
            raise RenderError(f"HL7 structure: too many fields in {segment[:3]}")
    if not segments[0].startswith("MSH|^~\\&|") or segments[0].split("|", 10)[9] != control_id:
        raise RenderError("HL7 structure: MSH-1/MSH-2 or MSH-10 is wrong")
    first_obx = segment_order(0).index("SPM")
    if any(segment.split("|", 12)[11:12] not in (["F"], ["C"], ["D"]) for segment in segments[first_obx : first_obx + results]):
        raise RenderError("HL7 structure: OBX-11 result status")


def render_oru_r01(payload: TransferPayload) -> str:
    """One ORU^R01^ORU_R01 v2.5.1 message, segments separated by CR (no trailing separator)."""
    segments = _oru_segments(payload)
    check_structure(segments, control_id=payload.message_id, results=observation_count(payload))
    return "\r".join(segments)


def render_batch(payloads: Sequence[TransferPayload], *, batch_id: str, created_at: datetime, file_id: str | None = None) -> str:
    """FHS, BHS, the messages, BTS (message count), FTS (batch count: 1)."""
    messages = [render_oru_r01(payload) for payload in payloads]
    return render_batch_text(messages, batch_id=batch_id, created_at=created_at, file_id=file_id)


def render_batch_text(messages: Sequence[str], *, batch_id: str, created_at: datetime, file_id: str | None = None) -> str:
    """render_batch for messages already rendered by render_oru_r01 (each must be exactly one message). FHS-11 (the
    file id, a new random one unless given) and BHS-11 (``batch_id``) differ; FHS-4/BHS-4 the sending facility: the
    messages' MSH-4 when they all share it (a batch of one pharmacy), else the Relais application's HD (the service
    that assembled the batch is its sender); FHS-5/6 and BHS-5/6 the messages' MSH-5/6 (ValueError if they differ: a
    batch goes to one destination)."""
    control_id = _control_id(batch_id, "batch_id")
    file_control_id = _control_id(file_id, "file_id") if file_id is not None else secrets.token_hex(10)
    while file_control_id == control_id:
        file_control_id = secrets.token_hex(10)
    bodies = []
    for message in messages:
        body = message.strip("\r\n")
        if len(split_batch(body)) != 1:
            raise ValueError("render_batch_text takes single messages")
        bodies.append(body)
    headers = [body.split("\r", 1)[0].split("|") for body in bodies]
    facilities = {_field(msh, 3) for msh in headers}
    receivers = {(_field(msh, 4), _field(msh, 5)) for msh in headers} or {(RECEIVING_APPLICATION, RECEIVING_FACILITY)}
    if len(receivers) != 1:
        raise ValueError("render_batch_text: the messages name different receivers (MSH-5/6); a batch goes to one destination")
    (receiving_application, receiving_facility) = receivers.pop()
    header = {
        2: ENCODING_CHARACTERS,
        3: _application_hd(),
        4: facilities.pop() if len(facilities) == 1 else _application_hd(),
        5: receiving_application,
        6: receiving_facility,
        7: _dtm(created_at, "created_at"),
    }
    segments = [_segment("FHS", {**header, 11: file_control_id}), _segment("BHS", {**header, 11: control_id}), *bodies]
    segments += [_segment("BTS", {1: str(len(bodies))}), _segment("FTS", {1: "1"})]
    return "\r".join(segments)


# --- reading: segments, batches, acknowledgements ------------------------------------------------


def _segments_of(text: str) -> list[str]:
    return [segment for segment in re.split(r"\r\n|\r|\n", text.strip()) if segment.strip()]


def split_batch(text: str) -> list[str]:
    """The messages of a batch (or of a lone message), without FHS/BHS/BTS/FTS; ValueError on stray segments."""
    messages: list[list[str]] = []
    current: list[str] | None = None
    for segment in _segments_of(text):
        name = segment[:3]
        if name in BATCH_SEGMENTS:
            current = None
        elif name == "MSH":
            current = [segment]
            messages.append(current)
        elif current is None:
            raise ValueError(f"segment {name!r} outside a message")
        else:
            current.append(segment)
    return ["\r".join(message) for message in messages]


def _msh_fields(segment: str) -> tuple[str, str, list[str]]:
    """(field separator, encoding characters, fields with MSH-n at index n-1) of an MSH segment."""
    if len(segment) < 8 or segment[:3] != "MSH":
        raise MalformedAck("no MSH segment")
    separator = segment[3]
    if separator.isalnum() or separator.isspace():
        raise MalformedAck("invalid field separator")
    fields = segment.split(separator)
    encoding = fields[1]
    if len(encoding) not in (4, 5) or len(set(encoding)) != len(encoding) or separator in encoding or any(c.isalnum() for c in encoding):
        raise MalformedAck("invalid encoding characters")
    return separator, encoding, [separator, *fields[1:]]


def _field(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def parse_ack(text: str) -> Ack:
    """The acknowledgement in a reply (one MSH, one MSA); MalformedAck for anything else."""
    if not isinstance(text, str):
        raise MalformedAck("not text")
    segments = _segments_of(text)
    if not segments:
        raise MalformedAck("empty reply")
    separator, encoding, _ = _msh_fields(segments[0])
    comp = encoding[0]

    def named(name: str) -> list[list[str]]:
        return [s.split(separator) for s in segments if s[:3] == name and (len(s) == 3 or s[3] == separator)]

    if len(named("MSH")) != 1 or any(s[:3] in BATCH_SEGMENTS for s in segments):
        raise MalformedAck("several messages: use parse_batch_acks")
    msa_segments = named("MSA")
    if len(msa_segments) != 1:
        raise MalformedAck("no MSA segment" if not msa_segments else "several MSA segments")
    msa = msa_segments[0]
    code = _field(msa, 1).strip()
    if code not in ACK_CODES:
        raise MalformedAck(f"unknown acknowledgement code {code[:10]!r}")
    control_id = unescape(_field(msa, 2).split(comp)[0], encoding, separator).strip()
    if not control_id:
        raise MalformedAck("MSA-2 (control id) is empty")
    errors = named("ERR")
    diagnostics = _texts([_field(msa, 3)] + [_field(err, n) for err in errors for n in (8, 7)], encoding, separator)
    if not diagnostics:  # fall back on the coded error: ERR-3 text, else its code
        coded = [_field(err, 3).split(comp) for err in errors]
        diagnostics = _texts([_field(c, 1) or _field(c, 0) for c in coded], encoding, separator)
    return Ack(code=code, control_id=control_id, text="; ".join(diagnostics))


def _texts(raw_values: list[str], encoding: str, separator: str) -> list[str]:
    texts: list[str] = []
    for raw in raw_values:
        value = unescape(raw, encoding, separator).strip()
        if value and value not in texts:
            texts.append(value)
    return texts


def parse_batch_acks(text: str) -> list[Ack]:
    """The acknowledgements of a batch reply (FHS/BHS, ACKs, BTS/FTS); a lone ACK gives a list of one."""
    if not isinstance(text, str):
        raise MalformedAck("not text")
    segments = _segments_of(text)
    try:
        messages = split_batch(text)
    except ValueError as exc:
        raise MalformedAck(str(exc)) from exc
    if not messages:
        raise MalformedAck("no acknowledgement in the reply")
    declared = [s.split(s[3])[1] if len(s) > 3 else "" for s in segments if s[:3] == "BTS"]
    if declared:
        try:
            total = sum(int(count or 0) for count in declared)
        except ValueError as exc:
            raise MalformedAck("invalid BTS-1 count") from exc
        if total != len(messages):
            raise MalformedAck(f"BTS counts {total} messages, the reply holds {len(messages)}")
    return [parse_ack(message) for message in messages]


def build_ack(message_text: str, code: str, text: str = "", *, control_id: str | None = None, now: datetime | None = None) -> str:
    """An ACK^R01^ACK (original mode) answering ``message_text``: MSH, MSA and, unless accepted, ERR."""
    if code not in ACK_CODES:
        raise ValueError(f"unknown acknowledgement code {code!r}")
    segments = _segments_of(message_text)
    if not segments:
        raise ValueError("not an HL7 message")
    try:
        _, _, msh = _msh_fields(segments[0])
    except MalformedAck as exc:
        raise ValueError("not an HL7 message") from exc
    trigger = _field(_field(msh, 8).split("^"), 1) or "R01"
    when = now or datetime.now().astimezone()
    header = _segment(
        "MSH",
        {
            2: ENCODING_CHARACTERS,
            3: _field(msh, 4),
            4: _field(msh, 5),
            5: _field(msh, 2),
            6: _field(msh, 3),
            7: _dtm(when, "now"),
            9: _c("ACK", escape(trigger), "ACK"),
            10: control_id or secrets.token_hex(10),
            11: "P",
            12: "2.5.1",
        },
    )
    result = [header, _segment("MSA", {1: code, 2: _field(msh, 9), 3: _label(text, 80)})]
    if code not in {"AA", "CA"}:
        result.append(_segment("ERR", {3: _c("207", "Application internal error", "HL70357"), 4: "E", 8: _label(text)}))
    return "\r".join(result)


def build_batch_ack(batch_text: str, code: str = "AA", text: str = "", *, codes: Mapping[str, str] | None = None) -> str:
    """A batch reply: one ACK per message of ``batch_text`` (``codes`` overrides per MSH-10)."""
    acks = []
    for message in split_batch(batch_text):
        _, _, msh = _msh_fields(message.split("\r", 1)[0])
        acks.append(build_ack(message, (codes or {}).get(_field(msh, 9), code), text))
    references = {name: _field(s.split("|"), 10) for s in _segments_of(batch_text) if (name := s[:3]) in {"FHS", "BHS"}}
    header = {2: ENCODING_CHARACTERS, 3: RECEIVING_APPLICATION, 5: SENDING_APPLICATION, 7: _dtm(datetime.now().astimezone(), "now")}
    return "\r".join(
        [
            _segment("FHS", {**header, 11: secrets.token_hex(10), 12: references.get("FHS", "")}),
            _segment("BHS", {**header, 11: secrets.token_hex(10), 12: references.get("BHS", "")}),
            *acks,
            _segment("BTS", {1: str(len(acks))}),
            _segment("FTS", {1: "1"}),
        ]
    )
