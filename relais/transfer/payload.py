"""What a message to the national platform says, independent of its format.

Built once from a screening version (see transfer.services.build_payload); renderers in formats/
turn it into HL7 v2.5.1 or FHIR R4. ``patient`` is None for a pseudonymous destination or a test recorded under
the old "no consent" rule (identity_withheld): the message then carries no personal data, only a pseudonym.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime


class UnmappableValue(ValueError):
    """A value has no code in the target vocabulary: a visible rejection, never a silent drop."""

    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"{field}: no code for value {value!r}")
        self.field = field
        self.value = value


@dataclass(frozen=True)
class PatientPart:
    last_name: str
    first_names: str
    sex: str  # F, M, O, U (HL7 table 0001 / FHIR female, male, other, unknown)
    date_of_birth: date
    nir: str = ""
    address_line: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    phone: str = ""  # E.164
    email: str = ""
    # Identity reliability (FR Core): True = checked on an identity document (VALI), False = not checked (PROV),
    # None = not recorded (a patient registered before the question existed).
    identity_verified: bool | None = None


@dataclass(frozen=True)
class ResultPart:
    analyte: str  # relais analyte code, e.g. "sars-cov-2"
    analyte_label: str  # "SARS-CoV-2"
    loinc_code: str  # e.g. "94558-4"
    loinc_display: str
    result_snomed: str  # 260373001 detected, 260415000 not detected, 125154007 invalid
    result_display: str


@dataclass(frozen=True)
class TransferPayload:
    message_id: str  # 20 characters, stable across retries: the receiver deduplicates on it
    created_at: datetime  # aware; when the message was first rendered
    status: str  # final | corrected | removed  (HL7 OBX-11 F/C/D; FHIR final/corrected/entered-in-error)
    screening_id: uuid.UUID  # this version of the test
    series_id: uuid.UUID  # the same for every version of one test
    version: int
    sampled_at: datetime
    recorded_at: datetime
    specimen_snomed: str
    specimen_display: str
    device_id: str  # EU rapid test device id
    device_name: str
    device_manufacturer: str
    pharmacy_name: str
    pharmacy_finess: str
    pharmacy_address_line: str
    pharmacy_postcode: str
    pharmacy_city: str
    # Stable, non-reversible id of the patient (hex), always present; keyed per destination, so two destinations get two
    # pseudonyms and an anonymous destination's never appears in an identified message.
    patient_pseudonym: str
    patient: PatientPart | None
    results: tuple[ResultPart, ...]
    # The kit (GS1 AI 10 lot, AI 17 expiry) and the ask-at-order-entry answers: "" / None when not recorded or not
    # asked, and then nothing is sent for them (a test recorded before they existed renders as it always did).
    kit_lot: str = ""
    kit_expiry: date | None = None
    symptoms: str = ""  # "" not asked, or a key of screenings.vocab.SYMPTOMS: yes | no | unknown
    symptom_onset: date | None = None  # only with symptoms == "yes"
    # The staff account that recorded this version (HL7 ORC-12/OBR-16, FHIR performer): RPPS number (11 digits, "" when
    # not entered), family and given names from the account's full name ("" when the account was deleted).
    recorder_rpps: str = ""
    recorder_family: str = ""
    recorder_given: str = ""
    recorder_id: str = ""  # the account's id, the identifier when there is no RPPS (HL7 XCN under the staff namespace)
    # The patient's Relais id (UUID) for a destination that receives identity (namespace("patient")); "" for a
    # pseudonymous destination, which gets only its own pseudonym.
    patient_id: str = ""
    # The same as patient.identity_verified, also present when the payload carries no identity.
    identity_verified: bool | None = None
    # The pharmacy's phone (E.164, "" when not entered: HL7 ORC-23 and FHIR Organization.telecom are then absent) and
    # its Relais id (UUID, str): HL7 MSH-4 names the facility by an OID derived from it (2.25.<int(uuid)>).
    pharmacy_phone: str = ""
    pharmacy_id: str = ""
    # The destination this payload is rendered for (its name in settings.RELAIS_TRANSFER["destinations"]): HL7 MSH-5/6
    # name that destination's receiving application and facility. "" = the destination in force.
    destination: str = ""
