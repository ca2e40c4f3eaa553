"""CSV import in the web UI: upload, progress, problems by row, error report; tenancy with owner, colleague, stranger."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from relais.audit.models import AuditEvent
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.submissions import services
from relais.submissions.models import Submission, SubmissionStatus


def _file(text: str, name: str = "tests.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("cp1252", errors="replace") if name.endswith("1252.csv") else text.encode(), "text/csv")


def _with_bad_rows() -> str:
    lines = csv_import.example_csv().splitlines()
    lines.append(lines[1].replace("12/03/1985", "31/02/1985"))  # no 31 February
    lines.append(lines[2].replace("positif", "=HYPERLINK(1)"))  # formula in a cell
    return "\r\n".join(lines) + "\r\n"


def test_upload_then_worker_then_report(as_user: Any, owner: Any) -> None:
    web = as_user(owner)
    page = web.get("/imports/")
    assert page.status_code == 200 and b"sampled_at" in page.content
    response = web.post("/imports/", {"file": _file(_with_bad_rows(), "DURAND Camille.csv")})
    assert response.status_code == 302
    submission = Submission.objects.get()
    assert submission.status == SubmissionStatus.QUEUED and submission.total == 7
    assert "DURAND" not in Submission.objects.values_list("file_name", flat=True)[0]  # file names are encrypted too
    detail = web.get(response["Location"])
    assert detail.status_code == 200 and b'id="progress-bar"' in detail.content and b'data-running="1"' in detail.content
    call_command("submission_worker", "--until-empty")
    status = web.get(f"/imports/{submission.pk}/status.json").json()
    assert (status["status"], status["accepted"], status["rejected"], status["percent"]) == ("done", 5, 2, 100)
    assert Screening.objects.count() == 5
    page = web.get(response["Location"]).content.decode()
    assert "31/02/1985" in page and "date_of_birth" in page and "=HYPERLINK(1)" in page
    report = web.get(f"/imports/{submission.pk}/errors.csv").content.decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in report and ",=HYPERLINK" not in report  # neutralised for spreadsheets
    assert report.splitlines()[1].startswith("7,")
    assert AuditEvent.objects.filter(action="submission.error_report", actor_id=owner.pk).exists()


def test_a_file_that_cannot_be_read_is_refused_at_once(as_user: Any, owner: Any) -> None:
    response = as_user(owner).post("/imports/", {"file": _file("foo;bar\n1;2\n")})
    assert response.status_code == 200 and b"last_name" in response.content  # names the missing columns
    assert Submission.objects.count() == 0


def test_windows_1252_semicolon_file(as_user: Any, owner: Any) -> None:
    text = csv_import.example_csv().replace(",", ";").replace("Nguyễn", "Nguyen")
    response = as_user(owner).post("/imports/", {"file": _file(text, "export-1252.csv")})
    assert response.status_code == 302
    submission = Submission.objects.get()
    services.csv_process(submission=submission, owner="t")
    submission.refresh_from_db()
    assert submission.accepted == 5, services.error_report_rows(submission)


def test_templates_download(as_user: Any, colleague: Any) -> None:
    web = as_user(colleague)
    for name in ("template", "example"):
        response = web.get(f"/imports/{name}.csv")
        assert response.status_code == 200 and csv_import.parse_csv(response.content).ok


def test_template_follows_the_page_language(as_user: Any, colleague: Any) -> None:
    web = as_user(colleague)
    french = web.get("/imports/template.csv", HTTP_ACCEPT_LANGUAGE="fr")
    header, example = french.content.decode("utf-8-sig").splitlines()[:2]
    assert header.startswith("Nom;Prénoms;Sexe;Date de naissance;") and "négatif" in example
    assert "modele-relais.csv" in french["Content-Disposition"]
    english = web.get("/imports/template.csv", HTTP_ACCEPT_LANGUAGE="en")
    assert english.content.decode("utf-8-sig").splitlines()[0] == ",".join(csv_import.COLUMN_NAMES)
    for response in (french, english):
        parsed = csv_import.parse_csv(response.content)
        assert parsed.ok and len(parsed.rows) == 1, (parsed.errors, parsed.file_errors)


@pytest.mark.parametrize("suffix", ["", "status.json", "errors.csv"])
def test_tenancy(as_user: Any, owner: Any, colleague: Any, stranger: Any, operator: Any, suffix: str) -> None:
    submission, _ = services.submission_open(actor=owner, kind="csv")
    url = f"/imports/{submission.pk}/{suffix}"
    assert as_user(owner).get(url).status_code == 200
    assert as_user(colleague).get(url).status_code == 200  # same pharmacy
    assert as_user(stranger).get(url).status_code == 404
    assert as_user(operator).get(url).status_code == 403


def test_worker_resumes_a_file_left_by_a_dead_worker(owner: Any, monkeypatch: Any) -> None:
    submission, _ = services.csv_submit(actor=owner, data=csv_import.example_csv().encode(), file_name="x.csv")
    monkeypatch.setattr(services, "CHUNK", 2)

    def killed(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the process dies after its first committed chunk

    with pytest.raises(KeyboardInterrupt):
        services.csv_process(submission=submission, owner="dead", progress=killed)
    submission.refresh_from_db()
    assert (submission.status, submission.processed) == ("processing", 2)
    Submission.objects.filter(pk=submission.pk).update(lease_until=None)  # its lease has run out
    call_command("submission_worker", "--until-empty")
    submission.refresh_from_db()
    assert (submission.status, submission.accepted, submission.processed) == ("done", 5, 5)
    assert Screening.objects.count() == 5
