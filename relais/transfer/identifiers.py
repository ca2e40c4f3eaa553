"""Identifier namespaces: every assigning authority and identifier system Relais writes in HL7 v2 and FHIR, in one place.

Relais's own identifiers live under the deployment's OID arc (settings.RELAIS_OID_ROOT), one sub-arc per kind of
identifier; FHIR systems are ``urn:oid:<arc>`` or, when settings.RELAIS_ID_NAMESPACE_URL is set, ``<url>/<kind>``.
French national identifiers use the OIDs of the ANS's registry (CI-SIS, "Annexe - Référentiel des OID")."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# French national assigning authorities (ANS / ASIP Santé OID registry).
FINESS_OID = "1.2.250.1.71.4.2.2"  # FINESS; in FR Core the value is "1" + the 9-digit FINESS (FINEG/FINEJ distinguished)
RPPS_OID = "1.2.250.1.71.4.2.1"  # national health professional id: "8" + the 11-digit RPPS
INS_NIR_OID = "1.2.250.1.213.1.4.8"  # INS-NIR (the NIR used as national health identifier)
INS_NIR_TEST_OID = "1.2.250.1.213.1.4.10"  # INS-NIR of test identities (INSi test platform)

# Sub-arcs of RELAIS_OID_ROOT, fixed forever once used (a receiver keys its records on them).
_ARCS = {
    "application": "1",  # Relais as sending application (MSH-3, SFT)
    "facility": "2",  # a pharmacy as Relais knows it, when no FINESS applies
    "order": "3",  # a test's placer/filler order number (stable across its versions)
    "specimen": "4",  # a test's specimen id
    "observation": "5",  # a result observation
    "message": "6",  # a message control id
    "batch": "7",  # an HL7 batch
    "file": "8",  # an HL7 file
    "pseudonym": "9",  # a patient pseudonym (derived per destination)
    "patient": "10",  # a patient's Relais id (identified messages only)
    "device": "11",  # a test kit instance
    "staff": "12",  # a staff account without RPPS
}


@dataclass(frozen=True)
class Namespace:
    kind: str
    oid: str

    @property
    def system(self) -> str:
        """The FHIR identifier system."""
        base = settings.RELAIS_ID_NAMESPACE_URL
        return f"{base}/{self.kind}" if base else f"urn:oid:{self.oid}"


def namespace(kind: str) -> Namespace:
    """The namespace of one kind of Relais identifier (KeyError for an unknown kind: a typo must not invent an arc)."""
    return Namespace(kind=kind, oid=f"{settings.RELAIS_OID_ROOT}.{_ARCS[kind]}")


def kinds() -> list[str]:
    return list(_ARCS)
