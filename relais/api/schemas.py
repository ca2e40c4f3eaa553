from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from relais.screenings.vocab import DEFAULT_SPECIMEN, canonical_result


def _text_only(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("give an ISO 8601 string")  # lax parsing would read 0 as 1 January 1970
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("remove the NUL character (\\u0000)")  # no database stores it, and no name contains it
    return value


NOTICE_HINT = "give the patient the information notice, then send true"
# A clearer word than pydantic's "Field required" for fields a client written for an older version may not send.
MISSING_HINTS = {"information_notice_given": f"Field required: {NOTICE_HINT}"}


def _notice_given(value: bool) -> bool:
    if value is not True:
        raise ValueError(NOTICE_HINT)
    return value


def error_message(error: Any) -> str:
    """Pydantic's message for one error, with a hint where a missing field needs one."""
    loc = list(error.get("loc") or [])
    if error.get("type") == "missing" and loc and str(loc[-1]) in MISSING_HINTS:
        return MISSING_HINTS[str(loc[-1])]
    return str(error.get("msg", "invalid value"))


Text = Annotated[str, AfterValidator(_no_nul)]
IsoDate = Annotated[date, BeforeValidator(_text_only)]
IsoDateTime = Annotated[datetime, BeforeValidator(_text_only)]


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")  # unknown fields are refused, not ignored


class PatientIn(Strict):
    # Placeholders no real or demo patient bears: the published OpenAPI document must not carry anyone's name.
    last_name: Text = Field(min_length=1, max_length=100, examples=["NOM-EXEMPLE"])
    first_names: Text = Field(min_length=1, max_length=150, examples=["Prénom-Exemple"])
    sex: Literal["F", "M", "O", "U"]
    date_of_birth: IsoDate = Field(examples=["1990-05-01"])
    nir: Text = Field("", max_length=21, description="15 characters with the key; 2A/2B for Corsica")
    address_line: Text = Field("", max_length=200)
    postcode: Text = Field("", max_length=16)
    city: Text = Field("", max_length=100)
    country: Text = Field("FR", min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    phone: Text = Field("", max_length=32, description="any format; stored in E.164")
    email: Text = Field("", max_length=254)
    identity_verified: StrictBool | None = Field(
        None,
        description=(
            "true: the pharmacist checked the identity on an identity document (ID card, passport, residence permit); "
            "false: not checked; absent: not recorded (FR Core identity reliability VALI / PROV)"
        ),
    )
    latin_last_name: Text = Field(
        "",
        max_length=150,
        description="Latin spelling from the passport's machine-readable zone, for a name in a script no ICAO table covers",
    )
    latin_first_names: Text = Field("", max_length=150, description="Latin spelling of the first names, as latin_last_name")


# 125154007 invalid (SNOMED CT International); 455371000124106, the US-extension invalid code Relais used before issue
# 16, is still accepted and stored as 125154007.
ResultCode = Annotated[Literal["260373001", "260415000", "125154007", "455371000124106"], AfterValidator(canonical_result)]


class ScreeningIn(Strict):
    patient: PatientIn | None = Field(None, description="the patient's identity; give this or patient_id")
    patient_id: uuid.UUID | None = Field(None, description="a patient registered earlier with POST /patients")
    device_id: Text = Field(max_length=32, description="EU rapid test device id, e.g. 1232", examples=["1232"])
    specimen_type: Text = Field(DEFAULT_SPECIMEN, max_length=20, description="SNOMED CT specimen code")
    sampled_at: IsoDateTime = Field(description="ISO 8601 with a time zone")
    results: dict[str, ResultCode] = Field(
        description="analyte -> SNOMED CT result (detected, not detected, invalid)", examples=[{"sars-cov-2": "260415000"}]
    )
    information_notice_given: Annotated[StrictBool, AfterValidator(_notice_given)] = Field(
        description=(
            "required, must be true: the pharmacist confirms the patient was given the information notice "
            "(GET /notice/). The result and identity are sent to the national platform for every test (loi n° 2020-546, art. 11)"
        ),
        examples=[True],
    )
    kit_lot: Text = Field(
        "",
        max_length=20,
        description="the test kit's lot, as printed on the box (GS1 AI 10: letters, digits and !\"%&'()*+,-./:;<=>?_); "
        "sent to the national platform",
        examples=["LOT-2024-0042"],
    )
    kit_expiry: IsoDate | None = Field(
        None,
        description="the test kit's expiry date (GS1 AI 17); a kit expired on the sampling date is refused",
        examples=["2027-03-31"],
    )
    symptoms: Literal["yes", "no", "unknown"] | None = Field(
        None,
        description="does the patient have symptoms of the condition tested for? Omit when not asked. Sent as LOINC 95419-8 "
        "(Y, N from HL7 table 0136; UNK from NullFlavor)",
        examples=["yes"],
    )
    symptom_onset: IsoDate | None = Field(
        None,
        description='the date the symptoms began: only with symptoms "yes", not after the sampling date nor more than a year '
        "before it. Sent as LOINC 65222-2",
        examples=["2026-11-29"],
    )
    consent_share_identity: StrictBool | None = Field(
        None,
        deprecated=True,
        description="deprecated and ignored: identity is sent for every test; send information_notice_given instead",
    )

    @model_validator(mode="after")
    def _one_patient(self) -> ScreeningIn:
        if (self.patient is None) == (self.patient_id is None):
            raise ValueError("give either patient (identity) or patient_id, not both")
        return self


class CorrectionIn(Strict):
    reason: Text = Field(min_length=1, max_length=500, description="why the result changes; kept with the new version")
    results: dict[str, ResultCode] = Field(description="the corrected result of every analyte of the device")


class RemovalIn(Strict):
    reason: Text = Field(min_length=1, max_length=500, description="why the test is removed (e.g. entered for the wrong patient)")


class BatchIn(Strict):
    items: list[Any] = Field(
        min_length=1,
        max_length=1000,
        description="up to 1,000 screenings, each shaped like the body of POST /screenings; each is accepted or refused on its own",
    )


class PatientOut(Schema):
    patient_id: uuid.UUID
    matched_existing: bool = Field(
        description="true when the identity is that of a patient already registered at your pharmacy: same NIR and birth date, or, "
        "without two NIRs to compare, the same last name, first names, birth date and sex"
    )
    needs_review: bool = Field(
        default=False,
        description="true when a new record was created beside a look-alike (same names and birth date, or same NIR, but another "
        "identifying field differs): the pharmacy reviews the pair and may merge them",
    )


class WebhookIn(Strict):
    url: Text = Field(min_length=8, max_length=500, examples=["https://example.org/relais/webhook"])


class WebhookOut(Schema):
    url: str
    created_at: datetime


class FieldError(Schema):
    field: str
    message: str
    value: str | None = None  # the value read, for CSV rows


class ErrorOut(Schema):
    error: str
    message: str
    fields: list[FieldError] = []


class TransferOut(Schema):
    status: str
    message_id: str
    acknowledged_at: datetime | None
    rejection_reason: str


class ScreeningOut(Schema):
    screening_id: uuid.UUID
    series_id: uuid.UUID
    version: int
    status: str
    patient_id: uuid.UUID
    kit_lot: str = Field("", description="the test kit's lot; empty when not recorded")
    kit_expiry: date | None = Field(None, description="the test kit's expiry date")
    symptoms: Literal["", "yes", "no", "unknown"] = Field("", description="empty when not asked")
    symptom_onset: date | None = None
    transfer: TransferOut | None


class TokenOut(Schema):
    access_token: str
    token_type: str
    expires_in: int


class TokenErrorOut(Schema):
    error: str
    error_description: str


class SubmitOut(ScreeningOut):
    outcome: Literal["accepted", "duplicate"]
    duplicate_of: uuid.UUID | None = Field(None, description="the earlier screening this submission repeats")
    note: str = ""


class ItemOut(Schema):
    index: int = Field(description="position in the batch (from 0), or the spreadsheet row number for CSV files")
    status: Literal["accepted", "duplicate", "rejected"]
    screening_id: uuid.UUID | None = Field(description="the recorded test; for a duplicate, the earlier test it repeats")
    duplicate_of: uuid.UUID | None
    errors: list[FieldError]


class SubmissionOut(Schema):
    submission_id: uuid.UUID
    kind: Literal["batch", "csv"]
    status: Literal["queued", "processing", "done", "failed"]
    total: int
    processed: int
    accepted: int
    duplicates: int
    rejected: int
    percent: int
    created_at: datetime
    finished_at: datetime | None
    failure_reason: str
    items: list[ItemOut]


class JwksOut(Schema):
    keys: list[dict[str, str]]
