"""Issue 15 items 3 and 5 in CSV files: symptoms, onset, kit lot and expiry columns, in English and in French (headers
and values); a bad value names its row and column and says what to fix, and that row records nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.utils import timezone

from relais.screenings.csv_import import COLUMN_NAMES, FRENCH_HEADERS, ImportResult, parse_csv, template_csv
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.submissions.models import Submission

NOW = datetime(2022, 1, 20, 12, 0, tzinfo=UTC)
BASE_HEADER = "last_name,first_names,sex,date_of_birth,device_id,sampled_at,result,information_notice"
BASE_ROW = "Lefèvre,Hélène,F,12/03/1985,1232,15/01/2022 14:30,négatif,oui"


def parse(text: str) -> ImportResult:
    return parse_csv(text.encode("utf-8"), now=NOW)


def test_english_columns_and_values() -> None:
    result = parse(f"{BASE_HEADER},symptoms,symptom_onset,kit_lot,kit_expiry\n{BASE_ROW},yes,2022-01-13,LOT-24/A17,2023-06-30\n")
    assert result.ok, result.errors
    data = result.rows[0].screening_input()
    assert (data.symptoms, data.symptom_onset, data.kit_lot, data.kit_expiry) == ("yes", date(2022, 1, 13), "LOT-24/A17", date(2023, 6, 30))


def test_french_headers_and_values() -> None:
    header = "Nom;Prénoms;Sexe;Date de naissance;Dispositif;Date du prélèvement;Résultat;Notice remise"
    row = "Lefèvre;Hélène;femme;12/03/1985;1232;15/01/2022 14:30;négatif;oui"
    for extra_header, extra_row, expected in [
        ("Symptômes;Début des symptômes;Lot;Péremption", "Oui;13/01/2022;AB12;30/06/2023", ("yes", date(2022, 1, 13), "AB12")),
        ("Symptômes;Début des symptômes;Numéro de lot;Date de péremption", "non;;X-1;01/02/2023", ("no", None, "X-1")),
        ("Symptômes;Lot;Date de péremption", "inconnu;;", ("unknown", None, "")),
    ]:
        result = parse(f"{header};{extra_header}\n{row};{extra_row}\n")
        assert result.ok, (extra_header, result.errors, result.file_errors)
        data = result.rows[0].screening_input()
        assert (data.symptoms, data.symptom_onset, data.kit_lot) == expected


def test_files_without_the_new_columns_read_as_before() -> None:
    result = parse(f"{BASE_HEADER}\n{BASE_ROW}\n")
    assert result.ok
    data = result.rows[0].screening_input()
    assert (data.symptoms, data.symptom_onset, data.kit_lot, data.kit_expiry) == ("", None, "", None)


def test_bad_values_name_row_column_and_fix() -> None:
    header = f"{BASE_HEADER},symptoms,symptom_onset,kit_lot,kit_expiry"
    rows = [
        f"{BASE_ROW},peut-être,,,",
        f"{BASE_ROW.replace('14:30', '14:31')},yes,31/02/2022,,",
        f"{BASE_ROW.replace('14:30', '14:32')},,,LOT 42,",
        f"{BASE_ROW.replace('14:30', '14:33')},,,{'L' * 21},",
        f"{BASE_ROW.replace('14:30', '14:34')},,,,demain",
        f"{BASE_ROW.replace('14:30', '14:35')},no,,,",
    ]
    result = parse(header + "\n" + "\n".join(rows) + "\n")
    by_row = {e.row_number: e for e in result.errors}
    assert sorted(by_row) == [2, 3, 4, 5, 6]  # row 7 is fine
    assert by_row[2].column == "symptoms" and by_row[2].value == "peut-être" and "yes, no or unknown" in by_row[2].message
    assert by_row[3].column == "symptom_onset" and "DD/MM/YYYY" in by_row[3].message
    assert by_row[4].column == "kit_lot" and "as printed on the box" in by_row[4].message
    assert by_row[5].column == "kit_lot" and "longer than 20" in by_row[5].message
    assert by_row[6].column == "kit_expiry" and "is not a date" in by_row[6].message
    assert [row.row_number for row in result.rows] == [7]


def test_templates_carry_the_columns_and_read_back() -> None:
    english = template_csv(now=NOW)
    french = template_csv(now=NOW, french=True)
    english_header, french_header = english.splitlines()[0].split(","), french.splitlines()[0].split(";")
    start = english_header.index("symptoms")  # after the original columns; issue 16's identity_verified comes after them
    assert english_header[start : start + 4] == ["symptoms", "symptom_onset", "kit_lot", "kit_expiry"]
    assert french_header[start : start + 4] == ["Symptômes", "Début des symptômes", "Lot", "Date de péremption"]
    assert [FRENCH_HEADERS[name] for name in COLUMN_NAMES] == french_header
    rows = [parse_csv(text.encode(), now=NOW).rows[0].screening_input() for text in (english, french)]
    assert rows[0] == rows[1] and rows[0].symptoms == "yes" and rows[0].symptom_onset and rows[0].kit_expiry


def test_rows_breaking_the_screening_rules_are_rejected_and_record_nothing(owner: Any) -> None:
    """Expired kit, onset without symptoms: screening_check (the rule every road shares) refuses the row, naming the column;
    the good row of the same file is recorded with its symptoms and kit."""
    sampled = timezone.now().astimezone(timezone.get_current_timezone()) - timedelta(hours=1)
    when = sampled.strftime("%d/%m/%Y %H:%M")
    today = timezone.localdate()
    onset = (today - timedelta(days=2)).strftime("%d/%m/%Y")
    expired = (today - timedelta(days=10)).strftime("%d/%m/%Y")
    good_expiry = (today + timedelta(days=100)).strftime("%d/%m/%Y")
    text = "\n".join(
        [
            "Nom;Prénoms;Sexe;Date de naissance;Dispositif;Date du prélèvement;Résultat;Notice remise;Symptômes;"
            "Début des symptômes;Lot;Date de péremption",
            f"ALPHA;Alex;U;01/01/1980;1232;{when};négatif;oui;oui;{onset};AB12;{good_expiry}",
            f"BRAVO;Alex;U;01/01/1980;1232;{when};négatif;oui;non;;AB12;{expired}",
            f"CHARLIE;Alex;U;01/01/1980;1232;{when};négatif;oui;non;{onset};;",
        ]
    )
    submission, _ = submissions.csv_submit(actor=owner, data=text.encode("utf-8"), file_name="jour.csv")
    claimed = submissions.submission_claim_queued(owner="test-worker")
    assert claimed is not None and claimed.pk == submission.pk
    submissions.csv_process(submission=claimed, owner="test-worker")
    done = Submission.objects.get(pk=submission.pk)
    assert (done.accepted, done.rejected) == (1, 2)
    rejected = {item.position: item for item in done.items.all() if item.status == "rejected"}
    assert set(rejected) == {3, 4}  # spreadsheet rows
    assert [e.field for e in submissions.item_errors(rejected[3])] == ["kit_expiry"]
    assert [e.field for e in submissions.item_errors(rejected[4])] == ["symptom_onset"]
    recorded = Screening.objects.get()
    assert (recorded.symptoms, recorded.symptom_onset, recorded.kit_lot) == ("yes", today - timedelta(days=2), "AB12")
    assert recorded.patient.last_name == "ALPHA"
