"""Parse and validate a CSV bulk upload of screenings. Pure: no database access, no writes.

``parse_csv(data)`` returns an :class:`ImportResult` holding, for each data row, either a :class:`ParsedRow`
(ready for ``relais.intake.services.screening_intake``) or :class:`RowError` entries saying what to fix.
Problems with the file as a whole (encoding, header) go to ``ImportResult.file_errors`` and no row is parsed.
``check_csv(data)`` runs only those whole-file checks, at upload: the rows are parsed once, by the worker that records them.

Row numbers are those a spreadsheet shows: the header is row 1, the first data row is row 2.
The device id is only checked for syntax here; whether it is in the EU catalogue is the service's job.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from relais.core.blind_index import normalise_name
from relais.patients.identity import IDENTITY_FIELDS, identity_from
from relais.patients.services import PatientIdentity
from relais.screenings.inputs import KIT_LOT_MAX, ScreeningInput, kit_lot_problem, sampling_time_problem
from relais.screenings.vocab import (
    DEFAULT_SPECIMEN,
    RESULT_DETECTED,
    RESULT_INVALID,
    RESULT_NOT_DETECTED,
    RESULTS,
    SPECIMENS,
    SYMPTOM_NO,
    SYMPTOM_UNKNOWN,
    SYMPTOM_YES,
    canonical_result,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PARIS = ZoneInfo("Europe/Paris")
ANALYTE = "sars-cov-2"
MAX_ROWS = 10_000
MAX_BYTES = 20 * 1024 * 1024
_VALUE_MAX = 100  # longest value echoed back in an error


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    description: StrOrPromise
    example: str


COLUMNS: tuple[Column, ...] = (
    Column("last_name", True, gettext_lazy("Birth or usage last name."), "Lefèvre"),
    Column("first_names", True, gettext_lazy("First names, separated by spaces."), "Hélène Marie"),
    Column("sex", True, gettext_lazy("F, M, O (other) or U (unknown); femme/homme/female/male also accepted."), "F"),
    Column("date_of_birth", True, gettext_lazy("DD/MM/YYYY or YYYY-MM-DD."), "12/03/1985"),
    Column("nir", False, gettext_lazy("Social security number, 15 characters; leave empty if unknown."), "285037505612306"),
    Column("address_line", False, gettext_lazy("Street address."), "12 rue de la République"),
    Column("postcode", False, gettext_lazy("Postcode (5 digits in France)."), "75011"),
    Column("city", False, gettext_lazy("City."), "Paris"),
    Column("country", False, gettext_lazy("Two-letter ISO country code; FR when empty."), "FR"),
    Column("phone", False, gettext_lazy("Mobile phone, French or international format."), "06 12 34 56 78"),
    Column("email", False, gettext_lazy("Email address."), "helene.lefevre@example.org"),
    Column("device_id", True, gettext_lazy("EU device id of the rapid test (JRC catalogue), such as 1232."), "1232"),
    Column(
        "specimen",
        False,
        gettext_lazy("nasopharyngeal, nasal, throat or saliva (or the SNOMED CT code); nasopharyngeal when empty."),
        "nasopharyngeal",
    ),
    Column("sampled_at", True, gettext_lazy("Sampling date and time: DD/MM/YYYY HH:MM (Paris time) or ISO 8601."), "15/01/2022 14:30"),
    Column("result", True, gettext_lazy("positive, negative or invalid (positif/négatif/invalide, or the SNOMED CT code)."), "negative"),
    Column(
        "information_notice",
        True,
        gettext_lazy(
            "yes (oui, 1, true) once the patient was given the information notice; the result and identity are sent to the "
            "national platform for every test. A row without yes is refused."
        ),
        "yes",
    ),
    # Issue 15: optional, after the original columns so files made from the older template keep their meaning.
    Column(
        "symptoms",
        False,
        gettext_lazy("Symptoms of the disease tested for: yes, no or unknown (oui, non, inconnu); empty when not asked."),
        "yes",
    ),
    Column(
        "symptom_onset",
        False,
        gettext_lazy("Date the symptoms began, DD/MM/YYYY or YYYY-MM-DD: only when symptoms is yes."),
        "13/01/2022",  # two days before the sampled_at example
    ),
    Column("kit_lot", False, gettext_lazy("Lot number of the test kit, as printed on the box (20 characters at most)."), "LOT-24A17"),
    Column(
        "kit_expiry",
        False,
        gettext_lazy("Expiry date of the test kit, DD/MM/YYYY or YYYY-MM-DD; an expired kit's test is refused."),
        "31/12/2030",
    ),
    # Issue 16: FR Core identity reliability.
    Column(
        "identity_verified",
        False,
        gettext_lazy(
            "yes (oui) when the pharmacist checked the identity on an identity document (ID card, passport, residence "
            "permit), no (non) when not; empty when not recorded."
        ),
        "yes",
    ),
)
# The old consent column: identity now goes to the national platform for every test, so its value is read and ignored.
IGNORED_COLUMNS = frozenset({"consent", "consentement"})
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.required)
IDENTITY_COLUMNS: tuple[str, ...] = IDENTITY_FIELDS

# Common French headers, after _key() normalisation.
HEADER_ALIASES = {
    "nom": "last_name",
    "nom_de_famille": "last_name",
    "prenom": "first_names",
    "prenoms": "first_names",
    "first_name": "first_names",
    "sexe": "sex",
    "date_de_naissance": "date_of_birth",
    "birth_date": "date_of_birth",
    "dob": "date_of_birth",
    "numero_de_securite_sociale": "nir",
    "adresse": "address_line",
    "address": "address_line",
    "code_postal": "postcode",
    "ville": "city",
    "pays": "country",
    "telephone": "phone",
    "courriel": "email",
    "prelevement": "specimen",
    "specimen_type": "specimen",
    "date_prelevement": "sampled_at",
    "date_du_prelevement": "sampled_at",
    "resultat": "result",
    "information_notice_given": "information_notice",
    "notice_given": "information_notice",
    "notice": "information_notice",
    "notice_d_information": "information_notice",
    "notice_information": "information_notice",
    "notice_remise": "information_notice",
    "information_remise": "information_notice",
    "information_donnee": "information_notice",
    "dispositif": "device_id",
    "identifiant_du_dispositif": "device_id",
    "symptomes": "symptoms",
    "symptomatique": "symptoms",
    "symptomatic": "symptoms",
    "debut_des_symptomes": "symptom_onset",
    "date_de_debut_des_symptomes": "symptom_onset",
    "date_debut_symptomes": "symptom_onset",
    "debut_symptomes": "symptom_onset",
    "onset": "symptom_onset",
    "symptom_onset_date": "symptom_onset",
    "lot": "kit_lot",
    "numero_de_lot": "kit_lot",
    "lot_du_kit": "kit_lot",
    "lot_number": "kit_lot",
    "peremption": "kit_expiry",
    "date_de_peremption": "kit_expiry",
    "date_peremption": "kit_expiry",
    "expiration": "kit_expiry",
    "date_d_expiration": "kit_expiry",
    "expiry": "kit_expiry",
    "expiry_date": "kit_expiry",
    "expiration_date": "kit_expiry",
    "identite_verifiee": "identity_verified",
    "identite_controlee": "identity_verified",
    "identity_checked": "identity_verified",
}

SEXES = {
    "f": "F",
    "femme": "F",
    "female": "F",
    "feminin": "F",
    "m": "M",
    "h": "M",
    "homme": "M",
    "male": "M",
    "masculin": "M",
    "o": "O",
    "other": "O",
    "autre": "O",
    "u": "U",
    "unknown": "U",
    "inconnu": "U",
}
SPECIMEN_NAMES = {
    "nasopharyngeal": "258500001",
    "nasopharyngeal swab": "258500001",
    "nasopharynge": "258500001",
    "nasopharyngee": "258500001",
    "nasopharyngien": "258500001",
    "np": "258500001",
    "nasal": "697989009",
    "nasal swab": "697989009",
    "nose": "697989009",
    "nez": "697989009",
    "anterior nares": "697989009",
    "throat": "258529004",
    "throat swab": "258529004",
    "gorge": "258529004",
    "oropharyngeal": "258529004",
    "oropharynge": "258529004",
    "saliva": "258560004",
    "salive": "258560004",
    "salivary": "258560004",
}
RESULT_NAMES = {
    "positive": RESULT_DETECTED,
    "positif": RESULT_DETECTED,
    "positive detected": RESULT_DETECTED,
    "detected": RESULT_DETECTED,
    "pos": RESULT_DETECTED,
    "negative": RESULT_NOT_DETECTED,
    "negatif": RESULT_NOT_DETECTED,
    "not detected": RESULT_NOT_DETECTED,
    "neg": RESULT_NOT_DETECTED,
    "invalid": RESULT_INVALID,
    "invalide": RESULT_INVALID,
}
YES_NO = {
    "yes": True,
    "oui": True,
    "1": True,
    "true": True,
    "vrai": True,
    "no": False,
    "non": False,
    "0": False,
    "false": False,
    "faux": False,
}
SYMPTOM_NAMES = {
    **{word: SYMPTOM_YES for word in ("yes", "oui", "y", "o", "1", "true", "vrai")},
    **{word: SYMPTOM_NO for word in ("no", "non", "n", "0", "false", "faux")},
    **{word: SYMPTOM_UNKNOWN for word in ("unknown", "inconnu", "inconnue", "ne sait pas", "nsp", "unk")},
}

_DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_FR_DATE_RE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
_ISO_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_FR_DATETIME_RE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T]+(\d{1,2})[:hH](\d{2})(?::(\d{2}))?")
_ISO_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)

DATE_HINT = gettext_lazy("use DD/MM/YYYY such as 12/03/1994")
DATETIME_HINT = gettext_lazy("use DD/MM/YYYY HH:MM such as 12/03/2022 14:30 (Paris time) or 2022-03-12T14:30:00+01:00")


@dataclass(frozen=True)
class RowError:
    row_number: int  # 0 for a file-level problem
    column: str  # "" when the error concerns the whole row
    value: str
    message: str


@dataclass(frozen=True)
class ParsedRow:
    row_number: int
    identity: PatientIdentity
    device_id: str
    specimen_type: str
    sampled_at: datetime
    results: dict[str, str]  # analyte code -> SNOMED CT result code
    information_notice_given: bool
    kit_lot: str = ""
    kit_expiry: date | None = None
    symptoms: str = ""  # "" when not asked
    symptom_onset: date | None = None

    def screening_input(self) -> ScreeningInput:
        # The rules across columns (expired kit, onset only with symptoms and not after sampling) are screening_check's,
        # the same on every road: a row breaking them is rejected naming the column, like any other row error.
        return ScreeningInput(
            device_id=self.device_id,
            specimen_type=self.specimen_type,
            sampled_at=self.sampled_at,
            results=dict(self.results),
            information_notice_given=self.information_notice_given,
            kit_lot=self.kit_lot,
            kit_expiry=self.kit_expiry,
            symptoms=self.symptoms,
            symptom_onset=self.symptom_onset,
        )


@dataclass
class ImportResult:
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.file_errors

    @property
    def rows_in_error(self) -> list[int]:
        return sorted({e.row_number for e in self.errors})


def _key(text: str) -> str:
    """Lower case, accents removed, runs of spaces/underscores/hyphens/dots collapsed: 'Date de naissance' -> 'date_de_naissance'."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[\s_.\-']+", "_", stripped.strip().lower()).strip("_")


def _word(text: str) -> str:
    """Like _key but with spaces: for vocabulary look-ups ('Négatif' -> 'negatif', 'Nasal-swab' -> 'nasal swab')."""
    return _key(text).replace("_", " ")


def _shown(value: str) -> str:
    return value if len(value) <= _VALUE_MAX else value[: _VALUE_MAX - 1] + "…"


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252"), "cp1252"


def _sniff_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(value: str) -> date | None:
    """DD/MM/YYYY (also with - or .) or YYYY-MM-DD; None when not a real date."""
    value = value.strip()
    if m := _ISO_DATE_RE.fullmatch(value):
        return _valid_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _FR_DATE_RE.fullmatch(value):
        return _valid_date(int(m[3]), int(m[2]), int(m[1]))
    return None


def _aware(naive: datetime) -> datetime | None:
    """Attach Paris time; None for a wall-clock time skipped by the spring DST change."""
    aware = naive.replace(tzinfo=PARIS)
    if aware.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != naive:
        return None
    return aware


def parse_datetime(value: str) -> datetime | None:
    """DD/MM/YYYY HH:MM[:SS] or ISO 8601 with optional offset; naive times are Paris time. None when invalid."""
    value = value.strip()
    try:
        if m := _FR_DATETIME_RE.fullmatch(value):
            return _aware(datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]), int(m[6] or 0)))
        if m := _ISO_DATETIME_RE.fullmatch(value):
            naive = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))
            if not m[7]:
                return _aware(naive)
            offset = "+00:00" if m[7].upper() == "Z" else m[7]
            return datetime.fromisoformat(naive.isoformat() + (offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"))
    except ValueError:
        return None
    return None


class _HeaderError(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _map_header(header: list[str]) -> list[str | None]:
    """Column name for each header cell (None for an empty, ignorable cell). Raises _HeaderError."""
    mapped: list[str | None] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    duplicated: list[str] = []
    ignored_consent = False
    for cell in header:
        key = _key(cell)
        if not key:
            mapped.append(None)
            continue
        if key in IGNORED_COLUMNS:
            mapped.append(None)
            ignored_consent = True
            continue
        name = key if key in COLUMN_NAMES else HEADER_ALIASES.get(key)
        if name is None:
            unknown.append(_shown(cell.strip()))
            mapped.append(None)
            continue
        if name in seen:
            duplicated.append(_("'%(cell)s' (same as '%(first)s')") % {"cell": _shown(cell.strip()), "first": seen[name]})
        seen[name] = cell.strip()
        mapped.append(name)
    messages = []
    if unknown:
        messages.append(
            _("Unknown column(s): %(unknown)s. Allowed columns: %(allowed)s.")
            % {"unknown": ", ".join(repr(u) for u in unknown), "allowed": ", ".join(COLUMN_NAMES)}
        )
    missing = [c for c in COLUMN_NAMES if c in REQUIRED_COLUMNS and c not in seen]
    if missing:
        messages.append(
            _("Missing required column(s): %(missing)s. The first row must be the header; see the template.")
            % {"missing": ", ".join(missing)}
        )
        if ignored_consent and "information_notice" in missing:
            messages.append(
                _(
                    "The consent column is no longer used: the result and identity are sent to the national platform for every "
                    "test (loi n° 2020-546, art. 11). Add an information_notice column with yes once the patient was given "
                    "the information notice."
                )
            )
    if duplicated:
        messages.append(_("Column(s) given twice: %(columns)s.") % {"columns": ", ".join(duplicated)})
    if messages:
        raise _HeaderError(messages)
    return mapped


def _parse_row(row_number: int, cells: dict[str, str], now: datetime) -> ParsedRow | list[RowError]:
    errors: list[RowError] = []

    def err(column: str, message: str) -> None:
        errors.append(RowError(row_number, column, _shown(cells.get(column, "").strip()), message))

    def get(column: str) -> str:
        return cells.get(column, "").strip()

    # Identity: normalise what the CSV allows more freely, then the rules every road shares (patients.identity).
    form_data = {name: get(name) for name in IDENTITY_COLUMNS}
    form_data["country"] = form_data["country"] or "FR"
    form_data["identity_verified"] = get("identity_verified")  # oui/non, yes/no; empty: not recorded
    sex_raw = get("sex")
    if sex_raw:
        sex = SEXES.get(_word(sex_raw))
        if sex is None:
            err("sex", _("sex: '%(value)s' is not a sex; use F, M, O (other) or U (unknown)") % {"value": _shown(sex_raw)})
        form_data["sex"] = sex or ""
    dob_raw = get("date_of_birth")
    if dob_raw:
        dob = parse_date(dob_raw)
        if dob is None:
            err("date_of_birth", _("date_of_birth: '%(value)s' is not a date; %(hint)s") % {"value": _shown(dob_raw), "hint": DATE_HINT})
        form_data["date_of_birth"] = dob.isoformat() if dob else ""
    identity: PatientIdentity | None = None
    try:
        identity = identity_from(form_data)
    except ValidationError as exc:
        already = {e.column for e in errors}
        for name, exceptions in exc.error_dict.items():
            column = "" if name == "__all__" else name
            if column in already:
                continue  # our own, more precise message is already there
            shown = get(column) if column else ""
            for exc in exceptions:
                message = _("is required") if exc.code == "required" else " ".join(exc.messages)
                prefix = f"{column}: '{_shown(shown)}' " if shown else (f"{column}: " if column else "")
                err(column, f"{prefix}{message}")

    device_id = get("device_id")
    if not device_id:
        err("device_id", _("device_id: is required; give the EU device id of the test, such as 1232"))
    elif not _DEVICE_RE.fullmatch(device_id):
        err(
            "device_id",
            _("device_id: '%(value)s' is not an EU device id; use the id from the EU catalogue, such as 1232")
            % {"value": _shown(device_id)},
        )

    specimen_raw = get("specimen")
    specimen: str | None = DEFAULT_SPECIMEN
    if specimen_raw:
        specimen = specimen_raw if specimen_raw in SPECIMENS else SPECIMEN_NAMES.get(_word(specimen_raw))
        if specimen is None:
            err(
                "specimen",
                _("specimen: '%(value)s' is not a known specimen; use nasopharyngeal, nasal, throat or saliva")
                % {"value": _shown(specimen_raw)},
            )

    sampled_raw = get("sampled_at")
    sampled_at: datetime | None = None
    if not sampled_raw:
        err("sampled_at", _("sampled_at: is required; %(hint)s") % {"hint": DATETIME_HINT})
    else:
        sampled_at = parse_datetime(sampled_raw)
        if sampled_at is None:
            err(
                "sampled_at",
                _("sampled_at: '%(value)s' is not a date and time; %(hint)s") % {"value": _shown(sampled_raw), "hint": DATETIME_HINT},
            )
        elif (problem := sampling_time_problem(sampled_at, now=now)) == "future":
            err("sampled_at", _("sampled_at: '%(value)s' is in the future; check the date and time") % {"value": _shown(sampled_raw)})
        elif problem == "too_old":
            err("sampled_at", _("sampled_at: '%(value)s' is more than 30 days ago; check the date") % {"value": _shown(sampled_raw)})

    result_raw = get("result")
    result: str | None = None
    if not result_raw:
        err("result", _("result: is required; use positive, negative or invalid"))
    else:
        result = canonical_result(result_raw) if canonical_result(result_raw) in RESULTS else RESULT_NAMES.get(_word(result_raw))
        if result is None:
            err("result", _("result: '%(value)s' is not a result; use positive, negative or invalid") % {"value": _shown(result_raw)})

    notice_raw = get("information_notice")
    if not notice_raw:
        err("information_notice", _("information_notice: is required; give the patient the information notice, then put yes"))
    elif YES_NO.get(_word(notice_raw)) is not True:
        err(
            "information_notice",
            _("information_notice: '%(value)s' is not yes; give the patient the information notice, then put yes")
            % {"value": _shown(notice_raw)},
        )

    symptoms_raw = get("symptoms")
    symptoms = ""
    if symptoms_raw:
        symptoms = SYMPTOM_NAMES.get(_word(symptoms_raw), "")
        if not symptoms:
            err(
                "symptoms",
                _("symptoms: '%(value)s' is not an answer; use yes, no or unknown (oui, non, inconnu), or leave it empty if not asked")
                % {"value": _shown(symptoms_raw)},
            )
    symptom_onset = _optional_date(get("symptom_onset"), "symptom_onset", err)
    kit_expiry = _optional_date(get("kit_expiry"), "kit_expiry", err)
    kit_lot = get("kit_lot")
    if (lot_problem := kit_lot_problem(kit_lot)) == "too_long":
        err(
            "kit_lot",
            _("kit_lot: '%(value)s' is longer than %(max)d characters; copy the lot number as printed on the box")
            % {"value": _shown(kit_lot), "max": KIT_LOT_MAX},
        )
    elif lot_problem == "characters":
        err(
            "kit_lot",
            _("kit_lot: '%(value)s' holds characters a lot number cannot hold (spaces, accents...); copy it as printed on the box")
            % {"value": _shown(kit_lot)},
        )

    if errors:
        return errors
    assert identity is not None and specimen is not None and sampled_at is not None and result is not None
    return ParsedRow(
        row_number=row_number,
        identity=identity,
        device_id=device_id,
        specimen_type=specimen,
        sampled_at=sampled_at,
        results={ANALYTE: result},
        information_notice_given=True,
        kit_lot=kit_lot,
        kit_expiry=kit_expiry,
        symptoms=symptoms,
        symptom_onset=symptom_onset,
    )


def _optional_date(raw: str, column: str, err: Callable[[str, str], None]) -> date | None:
    """An optional date column: None when empty; a row error naming the column when it is not a date."""
    if not raw:
        return None
    parsed = parse_date(raw)
    if parsed is None:
        err(column, _("%(column)s: '%(value)s' is not a date; %(hint)s") % {"column": column, "value": _shown(raw), "hint": DATE_HINT})
    return parsed


def _duplicate_key(row: ParsedRow) -> tuple[object, ...]:
    who: tuple[object, ...] = (
        ("nir", row.identity.nir)
        if row.identity.nir
        else (
            "name",
            normalise_name(row.identity.last_name),
            normalise_name(row.identity.first_names),
            row.identity.date_of_birth,
            row.identity.sex,
        )
    )
    return (*who, row.device_id, row.sampled_at)


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    # newline="" semantics: csv handles quoted line breaks itself.
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)


def _not_csv(exc: csv.Error) -> str:
    return _("The file is not valid CSV (%(problem)s): save it as CSV from your spreadsheet.") % {"problem": exc}


@dataclass
class _Reader:
    """The file as a whole: decoded text, header, and its non-blank data records, read once."""

    result: ImportResult
    text: str = ""
    mapped: list[str | None] = field(default_factory=list)
    data_rows: int = 0

    def records(self, max_rows: int) -> Iterator[tuple[int, list[str]]]:
        """(spreadsheet row number, cells) of each data record; file-level problems go to result.file_errors."""
        result = self.result
        try:
            records = _records(self.text, result.delimiter)
            next(records, None)  # the header, already mapped
            for index, record in enumerate(records, start=2):
                if not any(cell.strip() for cell in record):
                    continue  # blank line, often at the end of spreadsheet exports
                self.data_rows += 1
                if self.data_rows > max_rows:
                    result.file_errors.append(_("The file has more than %(rows)d rows: split it into several files.") % {"rows": max_rows})
                    return
                yield index, record
        except csv.Error as exc:
            result.file_errors.append(_not_csv(exc))
        if self.data_rows == 0 and not result.file_errors:
            result.file_errors.append(_("The file has a header but no data rows."))


def _open(data: bytes) -> _Reader:
    """Size, encoding, header: the problems that make the whole file unreadable (then result.file_errors is set)."""
    reader = _Reader(ImportResult())
    result = reader.result
    if len(data) > MAX_BYTES:
        result.file_errors.append(_("The file is larger than %(mb)d MB: split it into several files.") % {"mb": MAX_BYTES // (1024 * 1024)})
        return reader
    try:
        reader.text, result.encoding = _decode(data)
    except UnicodeDecodeError:
        result.file_errors.append(_("The file is neither UTF-8 nor Windows-1252 text: save it as “CSV UTF-8” from your spreadsheet."))
        return reader
    if "\x00" in reader.text:
        result.file_errors.append(_("The file contains binary data: save it as “CSV UTF-8” from your spreadsheet."))
        return reader
    if not reader.text.strip():
        result.file_errors.append(_("The file is empty: use the template, with the header on the first row."))
        return reader
    result.delimiter = _sniff_delimiter(reader.text)
    try:
        header = next(_records(reader.text, result.delimiter), None)
    except csv.Error as exc:
        result.file_errors.append(_not_csv(exc))
        return reader
    if header is None:
        result.file_errors.append(_("The file is empty: use the template, with the header on the first row."))
        return reader
    try:
        reader.mapped = _map_header(header)
    except _HeaderError as exc:
        result.file_errors.extend(exc.messages)
    return reader


@dataclass(frozen=True)
class CheckedFile:
    """A file fit to queue: its text and how many data rows it has. Rows are parsed later, once, by the worker."""

    text: str
    data_rows: int
    file_errors: list[str]


def check_csv(data: bytes, *, max_rows: int = MAX_ROWS) -> CheckedFile:
    """The whole-file checks of parse_csv (size, encoding, header, CSV syntax, row count) without parsing any row."""
    reader = _open(data)
    if not reader.result.file_errors:
        for _record in reader.records(max_rows):
            pass
    return CheckedFile(reader.text, reader.data_rows, reader.result.file_errors)


def parse_csv(data: bytes, *, now: datetime | None = None, max_rows: int = MAX_ROWS) -> ImportResult:
    """Parse a whole upload. Never raises on bad input: problems end up in ``errors`` or ``file_errors``."""
    reader = _open(data)
    result = reader.result
    if result.file_errors:
        return result
    now = now or timezone.now()
    width = len(reader.mapped)
    seen: dict[tuple[object, ...], int] = {}
    for index, record in reader.records(max_rows):
        extra = [cell for cell in record[width:] if cell.strip()]
        if extra:
            result.errors.append(
                RowError(
                    index,
                    "",
                    _shown(result.delimiter.join(extra)),
                    _("row has %(cells)d cells but the header has %(width)d; check for a stray '%(sep)s' or a missing quote")
                    % {"cells": len(record), "width": width, "sep": result.delimiter},
                )
            )
            continue
        cells = {name: cell for name, cell in zip(reader.mapped, record, strict=False) if name is not None}
        parsed = _parse_row(index, cells, now)
        if isinstance(parsed, list):
            result.errors.extend(parsed)
            continue
        key = _duplicate_key(parsed)
        if key in seen:
            result.errors.append(
                RowError(
                    index,
                    "",
                    "",
                    _("same patient, device and sampling time as row %(row)d; delete one of the two rows") % {"row": seen[key]},
                )
            )
            continue
        seen[key] = index
        result.rows.append(parsed)
    return result


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection: a cell starting with = + - @ tab or CR gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(rows: Iterable[Iterable[object]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()


def error_report_csv(result: ImportResult, *, delimiter: str = ",") -> str:
    """CSV of the problems (row, column, value, message); file-level problems first, with an empty row number."""
    lines: list[list[object]] = [["row", "column", "value", "message"]]
    lines.extend(["", "", "", message] for message in result.file_errors)
    lines.extend([e.row_number, e.column, e.value, e.message] for e in sorted(result.errors, key=lambda e: e.row_number))
    return write_csv(lines, delimiter)


def _recent(now: datetime | None, hours_ago: float) -> str:
    when = (now or timezone.now()).astimezone(PARIS) - timedelta(hours=hours_ago)
    return when.strftime("%d/%m/%Y %H:%M")


def _days_ago(now: datetime | None, days: int) -> str:
    return ((now or timezone.now()).astimezone(PARIS) - timedelta(days=days)).strftime("%d/%m/%Y")


def _expiry(now: datetime | None) -> str:
    """An example kit expiry that has not passed: the end of next year."""
    return f"31/12/{(now or timezone.now()).astimezone(PARIS).year + 1}"


# The French template's headers and example values: each header reads back through HEADER_ALIASES, each value through
# the vocabularies above (tests/screenings/test_csv_import.py checks both round trips).
FRENCH_HEADERS = {
    "last_name": "Nom",
    "first_names": "Prénoms",
    "sex": "Sexe",
    "date_of_birth": "Date de naissance",
    "nir": "Numéro de sécurité sociale",
    "address_line": "Adresse",
    "postcode": "Code postal",
    "city": "Ville",
    "country": "Pays",
    "phone": "Téléphone",
    "email": "Courriel",
    "device_id": "Dispositif",
    "specimen": "Prélèvement",
    "sampled_at": "Date du prélèvement",
    "result": "Résultat",
    "information_notice": "Notice remise",
    "symptoms": "Symptômes",
    "symptom_onset": "Début des symptômes",
    "kit_lot": "Lot",
    "kit_expiry": "Date de péremption",
    "identity_verified": "Identité vérifiée",
}
FRENCH_EXAMPLES = {
    "sex": "femme", "specimen": "nasopharyngé", "result": "négatif", "information_notice": "oui", "symptoms": "oui",
    "identity_verified": "oui",
}  # fmt: skip


def template_csv(*, now: datetime | None = None, french: bool = False) -> str:
    """The header and one example row (dated an hour ago, so it passes validation as is); ``french``: French headers
    and values (the pharmacist's download when the page is French; the API's template stays in the column names)."""
    example = [FRENCH_EXAMPLES.get(c.name, c.example) if french else c.example for c in COLUMNS]
    example[COLUMN_NAMES.index("sampled_at")] = _recent(now, 1)
    example[COLUMN_NAMES.index("symptom_onset")] = _days_ago(now, 2)
    example[COLUMN_NAMES.index("kit_expiry")] = _expiry(now)
    header = [FRENCH_HEADERS[name] for name in COLUMN_NAMES] if french else list(COLUMN_NAMES)
    return write_csv([header, example], ";" if french else ",")


def example_csv(*, now: datetime | None = None) -> str:
    """Five realistic rows (accents, French dates, optional columns left empty) dated within the last day."""
    rows = [
        ["Lefèvre", "Hélène Marie", "F", "12/03/1985", "285037505612306", "12 rue de la République", "75011", "Paris", "FR",
         "06 12 34 56 78", "helene.lefevre@example.org", "1232", "nasopharyngeal", _recent(now, 1), "négatif", "oui",
         "non", "", "LOT-24A17", _expiry(now), "oui"],
        ["Nguyễn", "Thành", "homme", "1992-01-16", "192016912304545", "", "69003", "Lyon", "",
         "+33 7 81 22 33 44", "", "1833", "nasal", _recent(now, 2), "positif", "oui",
         "oui", _days_ago(now, 2), "", "", "non"],
        ["Da Costa-Müller", "Inês", "femme", "05/12/2001", "", "3 place de l'Église", "13001", "Marseille", "FR",
         "", "ines.dacosta@example.org", "1232", "258500001", _recent(now, 3.5), "negative", "yes",
         "unknown", "", "", "", ""],
        ["O'Brien", "Seán Patrick", "M", "30/05/1978", "178059935001295", "", "", "", "IE",
         "", "", "1468", "saliva", _recent(now, 5), "invalide", "oui",
         "", "", "", "", "yes"],
        ["Benali", "Yasmine", "F", "2017-09-08", "", "45 avenue Jean Jaurès", "31000", "Toulouse", "FR",
         "06 98 76 54 32", "", "1232", "nasopharyngé", _recent(now, 20), "negative", "1",
         "no", "", "", "", ""],
    ]  # fmt: skip
    return write_csv([list(COLUMN_NAMES), *rows])
