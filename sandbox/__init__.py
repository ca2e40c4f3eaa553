"""SI-DEP sandbox: a stand-alone process that plays the national screening platform.

It receives HL7 v2.5.1 ORU^R01 messages over MLLP or HTTPS and FHIR R4 transaction Bundles over
HTTPS, validates them with hl7apy and fhir.resources, deduplicates them by message id, stores what
it accepted in SQLite and can be switched at run time into failure modes (down, slow, 500, 429,
reject, lost or malformed acknowledgement) through a loopback control API.

It deliberately imports nothing from ``relais``: it checks the sender against the formats, not
against the sender's own code. See docs/sandbox.md.
"""
