"""docs/codes.md lists every code Relais can send (issue 16, item 4): a code added to the vocabularies without its row
in the document fails here."""

from __future__ import annotations

from pathlib import Path

from relais.screenings.vocab import ANALYTES, RESULT_INVALID_US_EXTENSION, RESULTS, SPECIMENS
from relais.transfer.formats import hl7v2

DOC = (Path(__file__).resolve().parents[2] / "docs" / "codes.md").read_text(encoding="utf-8")


def test_every_analyte_result_and_specimen_code_is_documented() -> None:
    codes = {a.rapid_antigen_loinc for a in ANALYTES.values()} | {a.organism_snomed for a in ANALYTES.values()}
    codes |= set(RESULTS) | set(SPECIMENS) | {RESULT_INVALID_US_EXTENSION}
    missing = sorted(code for code in codes if f"`{code}`" not in DOC)
    assert not missing, f"docs/codes.md lacks {missing}"


def test_the_ask_at_order_entry_codes_are_documented() -> None:
    assert f"`{hl7v2.AOE_ONSET_LOINC[0]}`" in DOC
    assert "`95419-8`" in DOC
