"""The sandbox's FHIR server keeps its conditional-update resources and their versions in its SQLite store: a restart
(a new Store on the same data directory, or the sandbox process stopped and started again) keeps them, a reset clears
them, and a refused or duplicate bundle writes none."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from relais.transfer.formats import fhir
from relais.transfer.payload import TransferPayload
from sandbox.modes import Mode
from sandbox.service import Platform
from sandbox.store import Store
from tests.sandbox.test_sandbox import ROOT, start_sandbox, stop_sandbox
from tests.transfer.payload_factory import sample_payload


def versions() -> list[TransferPayload]:
    """One test recorded, corrected, then removed (one series id)."""
    series = uuid.uuid4()
    return [
        sample_payload(series_id=series, version=n, status=status) for n, status in enumerate(("final", "corrected", "removed"), start=1)
    ]


def send(platform: Platform, payload: TransferPayload) -> int:
    return platform.receive_fhir(fhir.render_bundle(payload).encode(), "https", Mode()).status


def report_key(payload: TransferPayload) -> str:
    return f"{fhir.systems().order}|{payload.series_id}"


def observation_key(payload: TransferPayload) -> str:
    return f"{fhir.systems().observation}|{payload.series_id}/sars-cov-2"


def kept(platform: Platform) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[dict[str, Any]]]]:
    summary = platform.resources.summary()
    return summary, {(r["resourceType"], r["identifier"]): platform.resources.history(r["resourceType"], r["identifier"]) for r in summary}


def test_a_new_store_on_the_same_directory_keeps_the_resources_and_their_versions(tmp_path: Path) -> None:
    first, corrected, removed = versions()
    store = Store(tmp_path)
    platform = Platform(store)
    assert send(platform, first) == 200 and send(platform, corrected) == 200
    before = kept(platform)
    report = platform.resources.current("DiagnosticReport", report_key(first))
    assert report is not None and report["meta"]["versionId"] == "2" and report["status"] == "corrected"
    store.close()

    store = Store(tmp_path)  # the restart
    platform = Platform(store)
    assert kept(platform) == before
    summary, histories = before
    assert {r["resourceType"] for r in summary} >= {"Patient", "Organization", "Observation", "DiagnosticReport", "Specimen"}
    observation = histories[("Observation", observation_key(first))]
    assert [(o["meta"]["versionId"], o["status"]) for o in observation] == [("1", "final"), ("2", "corrected")]
    # the server goes on from the kept versions: same resource id, version 3; the unchanged Patient gets no new version
    assert send(platform, removed) == 200
    after = platform.resources.history("Observation", observation_key(first))
    assert [(o["meta"]["versionId"], o["status"]) for o in after] == [("1", "final"), ("2", "corrected"), ("3", "entered-in-error")]
    assert len({o["id"] for o in after}) == 1
    patients = [r for r in platform.resources.summary() if r["resourceType"] == "Patient"]
    assert len(patients) == 1 and patients[0]["versions"] == 1
    store.close()


def test_reset_clears_the_resources(tmp_path: Path) -> None:
    store = Store(tmp_path)
    platform = Platform(store)
    assert send(platform, versions()[0]) == 200
    assert platform.resources.summary() != []
    store.reset()
    assert platform.resources.summary() == []
    store.close()
    assert Platform(Store(tmp_path)).resources.summary() == []


def test_a_refused_or_duplicate_bundle_writes_no_resource(tmp_path: Path) -> None:
    first, corrected, _ = versions()
    store = Store(tmp_path)
    platform = Platform(store)
    assert send(platform, corrected) == 422  # a correction that matches no original
    assert platform.resources.summary() == []
    assert send(platform, first) == 200
    before = kept(platform)
    assert send(platform, first) == 200  # a retry: the same message id
    assert kept(platform) == before
    store.close()


@pytest.fixture
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "dev"
    subprocess.run([sys.executable, "-m", "sandbox.devcerts", str(directory)], cwd=ROOT, check=True, capture_output=True)
    return directory


def test_the_sandbox_process_keeps_the_resources_across_a_restart(tmp_path: Path, certs: Path) -> None:
    first, corrected, _ = versions()
    sandbox = start_sandbox(tmp_path, certs)
    try:
        for payload in (first, corrected):
            status, _, _ = sandbox.fhir(fhir.render_bundle(payload).encode())
            assert status == 200
        summary = sandbox.control("GET", "/control/fhir-resources")[1]
        key = quote(report_key(first), safe="")
        history = sandbox.control("GET", f"/control/fhir-resources?type=DiagnosticReport&identifier={key}")[1]
    finally:
        assert stop_sandbox(sandbox) == 0
    assert [v["meta"]["versionId"] for v in history] == ["1", "2"]

    sandbox = start_sandbox(tmp_path, certs)
    try:
        assert sandbox.control("GET", "/control/fhir-resources")[1] == summary
        assert sandbox.control("GET", f"/control/fhir-resources?type=DiagnosticReport&identifier={key}")[1] == history
        assert sandbox.control("POST", "/control/reset")[0] == 200
        assert sandbox.control("GET", "/control/fhir-resources")[1] == []
    finally:
        assert stop_sandbox(sandbox) == 0
