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
# Invalid (no valid reading: the control line did not show): SNOMED CT International 125154007 "Specimen unsatisfactory
# for evaluation (finding)", the concept of the WHO DDCC lab-test-qual-result value set and the one HL7's COVID-19 home
# test value set lists beside the US-extension code. Until issue 16 Relais used 455371000124106 "Invalid result" of the
# SNOMED CT US extension, which a receiver on the International edition cannot resolve: rows holding it were converted
# (screenings migration 0007) and it is still accepted on input (API, CSV) as an alias. See docs/codes.md.
RESULT_INVALID = "125154007"
RESULT_INVALID_US_EXTENSION = "455371000124106"
RESULTS = {
    RESULT_DETECTED: _("Detected (positive)"),
    RESULT_NOT_DETECTED: _("Not detected (negative)"),
    RESULT_INVALID: _("Invalid (test to repeat)"),
}
# Codes accepted on input for a result and the code stored for them.
RESULT_ALIASES = {RESULT_INVALID_US_EXTENSION: RESULT_INVALID}


def canonical_result(code: str) -> str:
    """The stored code for a result code received (the old US-extension invalid code becomes 125154007)."""
    return RESULT_ALIASES.get(code, code)


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
