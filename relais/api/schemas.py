from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from relais.screenings.vocab import DEFAULT_SPECIMEN


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")  # unknown fields are refused, not ignored


class PatientIn(Strict):
    last_name: str = Field(min_length=1, max_length=100, examples=["DURAND-TESTEUR"])
    first_names: str = Field(min_length=1, max_length=150, examples=["Camille"])
    sex: Literal["F", "M", "O", "U"]
    date_of_birth: date
    nir: str = Field("", max_length=21, description="15 characters with the key; 2A/2B for Corsica")
    address_line: str = Field("", max_length=200)
    postcode: str = Field("", max_length=16)
    city: str = Field("", max_length=100)
    country: str = Field("FR", min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    phone: str = Field("", max_length=32, description="any format; stored in E.164")
    email: str = Field("", max_length=254)


class ScreeningIn(Strict):
    patient: PatientIn
    device_id: str = Field(max_length=32, description="EU rapid test device id, e.g. 1232", examples=["1232"])
    specimen_type: str = Field(DEFAULT_SPECIMEN, max_length=20, description="SNOMED CT specimen code")
    sampled_at: datetime = Field(description="ISO 8601 with a time zone")
    results: dict[str, Literal["260373001", "260415000", "455371000124106"]] = Field(
        description="analyte -> SNOMED CT result (detected, not detected, invalid)", examples=[{"sars-cov-2": "260415000"}]
    )
    consent_share_identity: bool


class FieldError(Schema):
    field: str
    message: str


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
    transfer: TransferOut | None


class TokenOut(Schema):
    access_token: str
    token_type: str
    expires_in: int


class TokenErrorOut(Schema):
    error: str
    error_description: str
