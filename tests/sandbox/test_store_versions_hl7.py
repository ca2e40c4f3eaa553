"""The sandbox store keeps one record per test with its version history, and refuses versions that match no original."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.store import Accepted, Store, VersionRefused


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path)
    yield s
    s.close()


def _accepted(message_id: str, status: str, key: str = "ORDER-1", fmt: str = "hl7v2") -> Accepted:
    return Accepted(
        message_id=message_id,
        format=fmt,
        transport="mllp",
        placer=key,
        filler=key,
        result_status=status[:1].upper(),
        has_identity=False,
        body=f"body {message_id}",
        response=f"AA {message_id}",
        test_key=key,
        version_status=status,
    )


def test_recorded_corrected_removed_is_one_record_with_three_versions(store: Store) -> None:
    for message_id, status in (("M1", "final"), ("M2", "corrected"), ("M3", "removed")):
        outcome = store.store(_accepted(message_id, status))
        assert not outcome.refused and not outcome.duplicate
    [record] = store.records()
    assert (record["test_key"], record["status"], record["versions"], record["current_message_id"]) == ("ORDER-1", "removed", 3, "M3")
    history = store.history("ORDER-1")
    assert [(v.sequence, v.version_status, v.message_id) for v in history] == [
        (1, "final", "M1"),
        (2, "corrected", "M2"),
        (3, "removed", "M3"),
    ]
    assert store.stats()["records"] == 1 and store.stats()["accepted"] == 3


def test_a_retried_correction_is_a_duplicate_not_a_new_version(store: Store) -> None:
    store.store(_accepted("M1", "final"))
    store.store(_accepted("M2", "corrected"))
    again = store.store(_accepted("M2", "corrected"))
    assert again.duplicate and again.response == "AA M2" and not again.refused
    assert len(store.history("ORDER-1")) == 2


@pytest.mark.parametrize("status", ["corrected", "removed"])
def test_a_change_without_original_is_refused_and_nothing_is_stored(store: Store, status: str) -> None:
    outcome = store.store(_accepted("M9", status, key="UNKNOWN"))
    assert "matches no original" in outcome.refused
    assert store.messages() == [] and store.records() == [] and store.history("UNKNOWN") == []
    assert store.stats()["rejected"] == 1
    # the same message id may come back once the original is there: it was not remembered
    store.store(_accepted("M0", "final", key="UNKNOWN"))
    assert not store.store(_accepted("M9", status, key="UNKNOWN")).refused


def test_a_change_after_removal_is_refused_a_new_final_is_a_new_version(store: Store) -> None:
    store.store(_accepted("M1", "final"))
    assert not store.store(_accepted("M2", "final")).refused  # a final re-sent under a new message id replaces it
    store.store(_accepted("M3", "removed"))
    assert "was removed" in store.store(_accepted("M4", "corrected")).refused
    assert "was removed" in store.store(_accepted("M4b", "removed")).refused
    assert not store.store(_accepted("M5", "final")).refused  # a new original starts over
    assert [v.version_status for v in store.history("ORDER-1")] == ["final", "final", "removed", "final"]
    assert store.records()[0]["status"] == "final"


def test_formats_keep_separate_records_and_record_version_alone(store: Store) -> None:
    store.record_version(format="fhir", test_key="ORDER-1", version_status="final", message_id="B1", body="{}")
    store.store(_accepted("M1", "final"))
    assert len(store.records()) == 2 and len(store.records(format="fhir")) == 1
    with pytest.raises(VersionRefused, match="matches no original"):
        store.record_version(format="fhir", test_key="OTHER", version_status="removed", message_id="B2", body="{}")
    assert [v.message_id for v in store.history("ORDER-1", format="fhir")] == ["B1"]
    assert store.history("ORDER-1")[0].as_dict()["format"] == "fhir"


def test_reset_forgets_records(store: Store) -> None:
    store.store(_accepted("M1", "final"))
    store.reset()
    assert store.records() == [] and store.history("ORDER-1") == []


def test_a_correction_needs_an_original_even_when_the_platform_refused_one(store: Store) -> None:
    """The sender must send the fix of a refused original as the original (no exception for refused tests)."""
    store.count_rejected()  # the original, refused: nothing stored
    assert "matches no original" in store.store(_accepted("M1", "corrected", key="REFUSED")).refused
    assert "matches no original" in store.store(_accepted("M2", "removed", key="REFUSED")).refused
    assert store.store(_accepted("M3", "final", key="REFUSED")).version.sequence == 1  # type: ignore[union-attr]
