"""Every table, imported in one place so migrations and tests see the whole schema."""

from screening.reference.models import District, Lab, SamplingPoint
from screening.residents.models import Resident
from screening.results.models import PlateRun, Result, Upload
from screening.rounds.models import BarcodeRange, Round, RoundDistrict
from screening.sampling.models import AppliedEvent, Sample, Tube
from screening.tokens.models import ApiToken
from screening.transport.models import Box

__all__ = [
    "ApiToken",
    "AppliedEvent",
    "BarcodeRange",
    "Box",
    "District",
    "Lab",
    "PlateRun",
    "Resident",
    "Result",
    "Round",
    "RoundDistrict",
    "Sample",
    "SamplingPoint",
    "Tube",
    "Upload",
]
