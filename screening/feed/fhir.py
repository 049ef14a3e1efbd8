"""The feed as FHIR: a ``Bundle`` (type ``collection``) of ``Observation`` resources,
built and validated with the ``fhir.resources`` models (their R4B package: FHIR 4.3,
which keeps R4's Observation, Patient, Specimen and Bundle as they were).

One Observation per change:
- ``code``: LOINC 94500-6, SARS-CoV-2 RNA [presence] in respiratory specimen by NAA;
- ``valueCodeableConcept``: SNOMED CT 260373001 Detected (positive, or a pool positive
  awaiting de-pooling), 260415000 Not detected (negative), 419984006 Inconclusive
  (invalid, or a suspicious single to be tested again); absent while pending, with
  ``dataAbsentReason`` temp-unknown;
- ``status``: ``final`` for negative, positive and invalid, ``preliminary`` otherwise
  (a pool positive is 混管可疑阳性: its people are re-tested one by one);
- ``subject``: a contained Patient with the ID number as identifier (its system names
  the ID type) and the name; ``specimen``: a contained Specimen naming the tube and
  whether it was pooled; ``meta.tag`` of each Observation and of the Bundle carry the
  cursor (the Bundle's: where to resume).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.specimen import Specimen, SpecimenCollection

from screening.feed.service import FeedRow

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CURSOR_TAG = "urn:screening:feed:cursor"
ID_SYSTEM = "urn:screening:id-type:"
TUBE_SYSTEM = "urn:screening:tube"
SPECIMEN_SYSTEM = "urn:screening:specimen"

DETECTED = Coding(system=SNOMED, code="260373001", display="Detected")
NOT_DETECTED = Coding(system=SNOMED, code="260415000", display="Not detected")
INCONCLUSIVE = Coding(system=SNOMED, code="419984006", display="Inconclusive")


def _value(row: FeedRow) -> Coding | None:
    if row.status == "negative":
        return NOT_DETECTED
    if row.status == "positive" or (row.status == "retest" and row.pooled):
        return DETECTED
    if row.status in ("invalid", "retest"):
        return INCONCLUSIVE
    return None  # pending


def observation(row: FeedRow) -> Observation:
    identifier_system = ID_SYSTEM + row.id_type + (f":{row.nationality}" if row.nationality else "")
    patient = Patient(
        id="patient",
        identifier=[Identifier(system=identifier_system, value=row.id_number)],
        name=[HumanName(text=row.name)],
    )
    pooled = "pooled" if row.pooled else "single"
    specimen = Specimen(
        id="specimen",
        identifier=[Identifier(system=TUBE_SYSTEM, value=row.tube)] if row.tube else None,
        type=CodeableConcept(
            coding=[Coding(system=SPECIMEN_SYSTEM, code=pooled)],
            text="混采管 pooled swabs" if row.pooled else "单采管 single swab",
        ),
        collection=SpecimenCollection(collectedDateTime=row.sampled_at),
    )
    value = _value(row)
    return Observation(
        id=f"feed-{row.seq}",
        meta=Meta(tag=[Coding(system=CURSOR_TAG, code=str(row.seq))]),
        contained=[patient, specimen],
        status="final" if row.result_kind == "final" else "preliminary",
        code=CodeableConcept(
            coding=[
                Coding(
                    system=LOINC,
                    code="94500-6",
                    display="SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen"
                    " by NAA with probe detection",
                )
            ]
        ),
        subject=Reference(reference="#patient"),
        specimen=Reference(reference="#specimen"),
        effectiveDateTime=row.sampled_at,
        issued=row.reported_at,
        performer=[Reference(display=row.lab)] if row.lab else None,
        valueCodeableConcept=CodeableConcept(coding=[value]) if value else None,
        dataAbsentReason=None
        if value
        else CodeableConcept(
            coding=[
                Coding(
                    system="http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    code="temp-unknown",
                )
            ]
        ),
    )


def feed_bundle(rows: Sequence[FeedRow], next_cursor: int) -> Bundle:
    return Bundle(
        type="collection",
        meta=Meta(tag=[Coding(system=CURSOR_TAG, code=str(next_cursor))]),
        entry=[
            BundleEntry(fullUrl=f"urn:screening:feed:{row.seq}", resource=observation(row))
            for row in rows
        ],
    )
