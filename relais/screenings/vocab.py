"""Coded vocabularies: analytes with their LOINC tests, SNOMED CT results and specimens."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Analyte:
    code: str
    label: str
    organism_snomed: str
    rapid_antigen_loinc: str


# Multiplex devices (flu A/B, RSV) add rows here and list several analytes; no schema change needed.
ANALYTES = {
    "sars-cov-2": Analyte("sars-cov-2", "SARS-CoV-2", "840533007", "94558-4"),
    "influenza-a": Analyte("influenza-a", "Influenza A", "407479009", "80382-5"),
    "influenza-b": Analyte("influenza-b", "Influenza B", "407480007", "80381-7"),
    "rsv": Analyte("rsv", "RSV", "6415009", "72885-7"),
}

RESULT_DETECTED = "260373001"
RESULT_NOT_DETECTED = "260415000"
RESULT_INVALID = "455371000124106"
RESULTS = {
    RESULT_DETECTED: _("Detected (positive)"),
    RESULT_NOT_DETECTED: _("Not detected (negative)"),
    RESULT_INVALID: _("Invalid (test to repeat)"),
}

SPECIMENS = {
    "258500001": _("Nasopharyngeal swab"),
    "697989009": _("Anterior nares (nasal) swab"),
    "258529004": _("Throat swab"),
    "258560004": _("Saliva"),
}
DEFAULT_SPECIMEN = "258500001"

# Symptoms of the condition tested for (HL7 AOE LOINC 95419-8: Y, N, UNK); "" when the question was not asked.
SYMPTOM_YES, SYMPTOM_NO, SYMPTOM_UNKNOWN = "yes", "no", "unknown"
SYMPTOMS = {
    SYMPTOM_YES: _("Yes"),
    SYMPTOM_NO: _("No"),
    SYMPTOM_UNKNOWN: _("Unknown"),
}
