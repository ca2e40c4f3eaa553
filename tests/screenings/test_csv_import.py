"""CSV bulk upload of screenings: decoding, header, per-row validation, duplicates, reports. No database needed."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.screenings.csv_import import (
    COLUMN_NAMES,
    COLUMNS,
    FRENCH_HEADERS,
    ImportResult,
    ParsedRow,
    RowError,
    error_report_csv,
    example_csv,
    parse_csv,
    parse_datetime,
    template_csv,
)
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID, RESULT_NOT_DETECTED

NOW = datetime(2022, 1, 20, 12, 0, tzinfo=UTC)
HEADER = "last_name,first_names,sex,date_of_birth,device_id,sampled_at,result,information_notice"
GOOD = "Lefèvre,Hélène,F,12/03/1985,1232,15/01/2022 14:30,négatif,oui"


def parse(text: str, encoding: str = "utf-8", **kwargs: object) -> ImportResult:
    return parse_csv(text.encode(encoding), now=NOW, **kwargs)  # type: ignore[arg-type]


def only_error(result: ImportResult) -> RowError:
    assert not result.file_errors, result.file_errors
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def test_columns_are_documented() -> None:
    assert len(set(COLUMN_NAMES)) == len(COLUMNS) == 21
    assert all(c.description and c.example for c in COLUMNS)
    required = {c.name for c in COLUMNS if c.required}
    assert required == {"last_name", "first_names", "sex", "date_of_birth", "device_id", "sampled_at", "result", "information_notice"}


def test_good_row_parsed_and_normalised() -> None:
    result = parse(f"{HEADER},nir,phone,postcode,specimen\n{GOOD},2 85 03 75 056 123 06,06 12 34 56 78,75011, Nasal \n")
    assert result.ok, (result.errors, result.file_errors)
    [row] = result.rows
    assert isinstance(row, ParsedRow)
    assert row.row_number == 2
    assert row.identity.last_name == "Lefèvre"
    assert row.identity.date_of_birth == date(1985, 3, 12)
    assert row.identity.nir == "285037505612306"
    assert row.identity.phone == "+33612345678"
    assert row.identity.country == "FR"
    assert row.device_id == "1232"
    assert row.specimen_type == "697989009"
    assert row.sampled_at == datetime(2022, 1, 15, 13, 30, tzinfo=UTC)  # Paris is UTC+1 in winter
    assert row.results == {"sars-cov-2": RESULT_NOT_DETECTED}
    assert row.information_notice_given is True
    screening = row.screening_input()
    assert screening.information_notice_given is True and screening.results == row.results


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_encodings_and_separators(encoding: str, delimiter: str) -> None:
    text = f"{HEADER}\r\n{GOOD}\r\n".replace(",", delimiter)
    result = parse(text, encoding)
    assert result.ok, (result.errors, result.file_errors)
    assert result.rows[0].identity.first_names == "Hélène"
    assert result.delimiter == delimiter
    assert result.encoding == {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp1252": "cp1252"}[encoding]


def test_semicolon_file_with_commas_in_values() -> None:
    result = parse(f"{HEADER.replace(',', ';')};address_line\n{GOOD.replace(',', ';')};1, rue de la Paix\n")
    assert result.ok, result.errors
    assert result.rows[0].identity.address_line == "1, rue de la Paix"


def test_headers_case_accents_spaces_and_french_aliases() -> None:
    header = " Last Name ,PRÉNOMS,Sexe,Date de naissance,Device-ID,sampled at,Résultat,Notice d'information"
    result = parse(f"{header}\n{GOOD}\n")
    assert result.ok, (result.errors, result.file_errors)


def test_unknown_and_missing_columns_are_file_errors() -> None:
    result = parse("last_name,first_names,colour,sex\nA,B,red,F\n")
    assert not result.rows and not result.errors
    text = " ".join(result.file_errors)
    assert "'colour'" in text
    for missing in ("date_of_birth", "device_id", "sampled_at", "result", "information_notice"):
        assert missing in text
    assert "last_name" not in text.split("Missing")[1].split(".")[0]


def test_duplicated_column_is_a_file_error() -> None:
    result = parse(f"{HEADER},Last Name\n{GOOD},X\n")
    assert result.file_errors and "twice" in result.file_errors[0]


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"\xff\xfe\x00l\x00a", b"\x81\x8d\x8f", HEADER.encode()],
)
def test_empty_binary_or_header_only(data: bytes) -> None:
    result = parse_csv(data, now=NOW)
    assert result.file_errors and not result.rows and not result.errors


def test_blank_lines_skipped_and_row_numbers_as_in_spreadsheet() -> None:
    bad = GOOD.replace("oui", "peut-être")
    result = parse(f"{HEADER}\n{GOOD}\n\n,,\n{bad}\n,,,,,,,\n")
    assert [r.row_number for r in result.rows] == [2]
    assert only_error(result).row_number == 5


def test_quoted_line_break_counts_as_one_row() -> None:
    result = parse(f'{HEADER},address_line\n{GOOD},"1 rue X\nBât. B"\n{GOOD.replace("Hélène", "Léa")},\n')
    assert [r.row_number for r in result.rows] == [2, 3]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15/01/2022 14:30", datetime(2022, 1, 15, 13, 30, tzinfo=UTC)),
        ("15/01/2022 14h30", datetime(2022, 1, 15, 13, 30, tzinfo=UTC)),
        ("5/1/2022 09:05:10", datetime(2022, 1, 5, 8, 5, 10, tzinfo=UTC)),
        ("2022-01-15T14:30", datetime(2022, 1, 15, 13, 30, tzinfo=UTC)),
        ("2022-01-15 14:30:15", datetime(2022, 1, 15, 13, 30, 15, tzinfo=UTC)),
        ("2022-01-15T14:30:00+02:00", datetime(2022, 1, 15, 12, 30, tzinfo=UTC)),
        ("2022-01-15T14:30:00Z", datetime(2022, 1, 15, 14, 30, tzinfo=UTC)),
        ("2022-07-15T14:30", datetime(2022, 7, 15, 12, 30, tzinfo=UTC)),  # summer time
        ("31/02/2022 10:00", None),
        ("2022-03-27T02:30", None),  # skipped by the spring clock change
        ("15/01/2022", None),
        ("hier", None),
    ],
)
def test_parse_datetime(value: str, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize("dob", ["12/03/1985", "1985-03-12", "12-03-1985", "12.03.1985"])
def test_dates_of_birth_french_and_iso(dob: str) -> None:
    result = parse(f"{HEADER}\n{GOOD.replace('12/03/1985', dob)}\n")
    assert result.rows[0].identity.date_of_birth == date(1985, 3, 12)


@pytest.mark.parametrize(
    ("column", "old", "new", "fragment"),
    [
        ("date_of_birth", "12/03/1985", "31/02/1990", "date_of_birth: '31/02/1990' is not a date; use DD/MM/YYYY such as 12/03/1994"),
        ("date_of_birth", "12/03/1985", "12/03/2099", "future"),
        ("date_of_birth", "12/03/1985", "12/03/1850", "130 years"),
        ("sex", ",F,", ",X,", "sex: 'X' is not a sex"),
        ("last_name", "Lefèvre", "", "last_name: is required"),
        ("device_id", "1232", "12 32!", "is not an EU device id"),
        ("device_id", "1232", "", "device_id: is required"),
        ("sampled_at", "15/01/2022 14:30", "15/13/2022 14:30", "is not a date and time"),
        ("sampled_at", "15/01/2022 14:30", "25/01/2022 14:30", "in the future"),
        ("sampled_at", "15/01/2022 14:30", "15/11/2021 14:30", "more than 30 days"),
        ("sampled_at", "15/01/2022 14:30", "", "sampled_at: is required"),
        ("result", "négatif", "peut-être", "result: 'peut-être' is not a result"),
        ("result", "négatif", "", "result: is required"),
        ("information_notice", ",oui", ",maybe", "information_notice: 'maybe' is not yes; give the patient the information notice"),
        ("information_notice", ",oui", ",non", "information_notice: 'non' is not yes; give the patient the information notice"),
        ("information_notice", ",oui", ",", "information_notice: is required; give the patient the information notice"),
    ],
)
def test_row_errors_name_row_column_value(column: str, old: str, new: str, fragment: str) -> None:
    result = parse(f"{HEADER}\n{GOOD}\n{GOOD.replace(old, new, 1)}\n")
    assert [r.row_number for r in result.rows] == [2]
    error = only_error(result)
    assert (error.row_number, error.column) == (3, column)
    assert error.value == new.strip(",")
    assert fragment in error.message


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("nir", "123", "15 characters"),
        ("nir", "285037505612307", "key"),
        ("nir", "185037505612356", "does not match the sex"),
        ("phone", "12", "phone"),
        ("email", "nobody", "email address"),
        ("postcode", "7501", "5 digits"),
        ("country", "France", "at most 2 characters"),
        ("specimen", "blood", "specimen: 'blood' is not a known specimen"),
    ],
)
def test_optional_column_errors(column: str, value: str, fragment: str) -> None:
    result = parse(f"{HEADER},{column}\n{GOOD},{value}\n")
    error = only_error(result)
    assert (error.row_number, error.column, error.value) == (2, column, value)
    assert fragment in error.message
    assert error.message.startswith(f"{column}: '{value}'")


def test_several_errors_in_one_row_and_bad_rows_do_not_stop_others() -> None:
    bad = "Lefèvre,,Z,31/02/1990,1232,demain,ok,peut-être"
    result = parse(f"{HEADER}\n{bad}\n{GOOD}\n")
    assert [r.row_number for r in result.rows] == [3]
    assert {e.column for e in result.errors} == {"first_names", "sex", "date_of_birth", "sampled_at", "result", "information_notice"}
    assert {e.row_number for e in result.errors} == {2}
    assert result.rows_in_error == [2]


def test_too_many_cells_is_a_row_error() -> None:
    result = parse(f"{HEADER}\n{GOOD},surplus\n{GOOD},\n")
    error = only_error(result)
    assert (error.row_number, error.column, error.value) == (2, "", "surplus")
    assert "header has 8" in error.message
    assert [r.row_number for r in result.rows] == [3]  # a trailing empty cell is harmless


def test_short_rows_are_missing_values_not_crashes() -> None:
    result = parse(f"{HEADER}\nLefèvre,Hélène,F\n")
    assert {e.column for e in result.errors} == {"date_of_birth", "device_id", "sampled_at", "result", "information_notice"}


@pytest.mark.parametrize(
    ("value", "code"),
    [("positive", RESULT_DETECTED), ("POSITIF", RESULT_DETECTED), ("Négatif", RESULT_NOT_DETECTED), ("invalide", RESULT_INVALID)],
)
def test_result_vocabulary(value: str, code: str) -> None:
    result = parse(f"{HEADER}\n{GOOD.replace('négatif', value)}\n")
    assert result.rows[0].results == {"sars-cov-2": code}


@pytest.mark.parametrize(("value", "sex"), [("femme", "F"), ("Female", "F"), ("homme", "M"), ("male", "M"), ("o", "O"), ("U", "U")])
def test_sex_vocabulary(value: str, sex: str) -> None:
    line = GOOD.replace(",F,", f",{value},")
    result = parse(f"{HEADER}\n{line}\n")
    assert result.rows[0].identity.sex == sex


@pytest.mark.parametrize("value", ["yes", "OUI", "1", "true", "Vrai"])
def test_information_notice_vocabulary(value: str) -> None:
    result = parse(f"{HEADER}\n{GOOD.replace(',oui', ',' + value)}\n")
    assert result.rows[0].information_notice_given is True


def test_specimen_vocabulary_and_default() -> None:
    for value, code in [("nasopharynge", "258500001"), ("Nasopharyngé", "258500001"), ("saliva", "258560004"), ("258529004", "258529004")]:
        result = parse(f"{HEADER},specimen\n{GOOD},{value}\n")
        assert result.rows[0].specimen_type == code, value
    assert parse(f"{HEADER}\n{GOOD}\n").rows[0].specimen_type == "258500001"


def test_duplicates_by_name_and_by_nir() -> None:
    same_name = GOOD.replace("Lefèvre", "LEFÈVRE").replace("15/01/2022 14:30", "2022-01-15T14:30:00+01:00")
    other_time = GOOD.replace("14:30", "16:00")
    result = parse(f"{HEADER}\n{GOOD}\n{other_time}\n{same_name}\n")
    assert [r.row_number for r in result.rows] == [2, 3]
    error = only_error(result)
    assert (error.row_number, error.column) == (4, "")
    assert "row 2" in error.message

    nir_a = f"{GOOD},285037505612306"
    nir_b = f"{GOOD.replace('Hélène', 'Helene M.')},285037505612306"
    result = parse(f"{HEADER},nir\n{nir_a}\n{nir_b}\n")
    assert "row 2" in only_error(result).message


def test_error_report_is_safe_against_formula_injection() -> None:
    result = parse(f'{HEADER},email\n{GOOD.replace("Lefèvre", "")},=HYPERLINK("http://x")\n{GOOD}, -1+1\n')
    report = error_report_csv(result)
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[0] == ["row", "column", "value", "message"]
    for cells in rows[1:]:
        for cell in cells:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cells
    values = {r[2] for r in rows[1:]}
    assert '\'=HYPERLINK("http://x")' in values
    assert "'-1+1" in values
    messages = " ".join(r[3] for r in rows[1:])
    assert "last_name" in messages


def test_error_report_lists_file_errors() -> None:
    report = error_report_csv(parse("foo\n1\n"))
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[1][0] == "" and "foo" in rows[1][3]


def test_template_and_example_pass_their_own_validation() -> None:
    template = template_csv(now=NOW)
    assert template.splitlines()[0] == ",".join(COLUMN_NAMES)
    result = parse_csv(template.encode(), now=NOW)
    assert result.ok and len(result.rows) == 1
    example = example_csv(now=NOW)
    result = parse_csv(example.encode(), now=NOW)
    assert result.ok, (result.errors, result.file_errors)
    assert len(result.rows) == 5
    assert "é" in example and "/" in example
    # Default "now" too, as a user downloading them today would get.
    assert parse_csv(example_csv().encode()).ok
    assert parse_csv(template_csv().encode()).ok


def test_french_template_reads_back_as_the_english_one() -> None:
    french, english = (parse_csv(template_csv(now=NOW, french=f).encode(), now=NOW) for f in (True, False))
    assert french.ok and english.ok, (french.errors, french.file_errors)
    assert template_csv(now=NOW, french=True).splitlines()[0].split(";") == [FRENCH_HEADERS[n] for n in COLUMN_NAMES]
    # The same test whatever the language of the headers and values (femme/F, négatif/negative, oui/yes).
    assert french.rows[0].screening_input() == english.rows[0].screening_input()


def test_too_many_rows() -> None:
    result = parse(f"{HEADER}\n" + "\n".join(GOOD.replace("14:30", f"14:{i:02d}") for i in range(5)), max_rows=3)
    assert len(result.rows) == 3
    assert "more than 3 rows" in result.file_errors[0]


def test_ten_thousand_rows_timing(capsys: pytest.CaptureFixture[str]) -> None:
    start_time = NOW - timedelta(days=10)
    lines = [f"{HEADER},nir,phone,email,postcode,specimen"]
    for i in range(10_000):
        sampled = (start_time + timedelta(minutes=i)).strftime("%d/%m/%Y %H:%M")
        lines.append(f"Nom{i},Prénom,F,12/03/1985,1232,{sampled},negative,yes,,06 12 34 56 78,p{i}@example.org,75011,nasal")
    data = "\n".join(lines).encode("cp1252")
    started = time.perf_counter()
    result = parse_csv(data, now=NOW)
    elapsed = time.perf_counter() - started
    assert result.ok, result.errors[:3]
    assert len(result.rows) == 10_000
    with capsys.disabled():
        print(f"\n10,000 rows parsed in {elapsed:.2f} s")
    assert elapsed < 60


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = parse_csv(data, now=NOW)
    assert isinstance(result, ImportResult)
    assert result.file_errors or result.errors or result.rows is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30), max_size=10), max_size=6))
def test_arbitrary_cells_under_a_valid_header_never_raise(rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMN_NAMES)
    writer.writerows(rows)
    result = parse_csv(out.getvalue().encode(), now=NOW)
    assert not result.file_errors or "rows" in " ".join(result.file_errors)
    for error in result.errors:
        assert error.row_number >= 2 and error.message
