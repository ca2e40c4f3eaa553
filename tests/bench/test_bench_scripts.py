"""make bench's scripts on tiny sizes, so they keep working as the app changes (the figures themselves are not tested)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"^bench: intake_per_s=\d+ deliver_hl7_per_s=\S+ deliver_fhir_per_s=\S+ single_p99_ms_at_100=\S+ "
    r"intake_ratio_to_floor=[\d.]+ growth_ratio_1m=\S+$",
    re.MULTILINE,
)


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="make bench builds its own SQLite database")
def test_quick_bench_runs_floor_intake_and_seeding_and_counts_every_row() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    args = ["--quick", "--batches", "1", "--batch-size", "20", "--growth-patients", "300", "--skip-transfer", "--skip-single"]
    result = subprocess.run([sys.executable, "bench/run.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # The floor recorded the batch, the app accepted it twice (empty, then grown) with every row each result needs.
    assert re.search(r"floor_per_s: \d+ results/s", out)
    assert out.count("effects: all 20 accepted results have their rows") == 2
    assert "effects: all 40 accepted results have their rows" in out  # two clients at once, two batches each
    assert re.search(r"^intake_2clients_per_s: \d+ results/s", out, re.MULTILINE)
    assert "seeded 300 patients and 300 tests" in out
    assert re.search(r"^growth_ratio_paired: [\d.]+ ", out, re.MULTILINE)  # the floor ran beside the grown run too
    stored = re.search(r"  patients stored: ([\d,]+), tests", out)
    assert stored is not None and int(stored.group(1).replace(",", "")) >= 300 + 2 * 20  # seeded, then both runs' patients
    assert "deliver_hl7_per_s: not measured" in out
    summary = SUMMARY.findall(out)
    assert len(summary) == 1 and out.rstrip().endswith(summary[0]), out[-2000:]
    assert "growth_ratio_1m=not_measured" in summary[0]  # a 300-patient seed is no 1M figure


def test_effects_check_names_the_rows_a_result_lacks() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from intake_throughput import check_effects

    before = {"audit:screening.create": 0}
    complete = {
        "patients_patient": 10,
        "screenings_screening": 10,
        "screenings_screeningresult": 10,
        "certificates_certificate": 10,
        "transfer_outboxmessage": 10,
        "notify_resultlink": 10,
        "notify_notification": 20,
        "audit:screening.create": 10,
        "audit:notification.queue": 10,
    }
    assert check_effects(before, complete, 10) == []
    assert check_effects(before, {**complete, "notify_notification": 10}, 10) == ["notify_notification: 10 new rows, 20 expected"]
    assert check_effects(before, {**complete, "audit:screening.create": 9}, 10) == ["audit:screening.create: 9 events for 10 results"]
