"""Every table, imported in one place so migrations and tests see the whole schema."""

from screening.progress.models import (
    LabTurnaroundCount,
    ProgressCount,
    RoundPerson,
    TurnaroundCount,
)
from screening.reference.models import District, Lab, SamplingPoint
from screening.residents.models import Resident
from screening.results.models import PlateRun, Result, Upload
from screening.retests.models import AuditEntry, RetestCase, RetestEvent, RetestMember
from screening.rounds.models import BarcodeRange, Round, RoundDistrict
from screening.sampling.models import AppliedEvent, Sample, Tube
from screening.tokens.models import ApiToken
from screening.transport.models import Box

__all__ = [
    "ApiToken",
    "AppliedEvent",
    "AuditEntry",
    "BarcodeRange",
    "Box",
    "District",
    "Lab",
    "LabTurnaroundCount",
    "PlateRun",
    "ProgressCount",
    "Resident",
    "Result",
    "RetestCase",
    "RetestEvent",
    "RetestMember",
    "Round",
    "RoundDistrict",
    "RoundPerson",
    "Sample",
    "SamplingPoint",
    "Tube",
    "TurnaroundCount",
    "Upload",
]
