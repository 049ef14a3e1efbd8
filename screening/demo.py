"""Demo reference data: a district, sampling points, a lab, residents and an open
round with barcodes, so a newcomer has something to scan right away."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import ric

from screening.privacy import Vault
from screening.reference import service as reference
from screening.reference.models import District
from screening.reference.schemas import DistrictCreate, LabCreate, SamplingPointCreate
from screening.residents.service import Registration, register_many
from screening.rounds import service as rounds
from screening.rounds.schemas import RangeCreate, RoundCreate
from screening.tokens.service import create_token

DISTRICT = "DEMO01"
POINTS = [
    ("SP001", "示范社区第一采样点", "示范路1号"),
    ("SP002", "示范社区第二采样点", "示范路88号"),
    ("SP003", "示范小学采样点", "学府街3号"),
]
LAB = "LAB01"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


@dataclass(frozen=True, slots=True)
class DemoInfo:
    round_id: int
    admin_token: str
    sampler_tokens: dict[str, str]
    lab_token: str
    resident_codes: list[str]
    first_barcodes: dict[str, str]


def synthetic_prc_id(rng: random.Random) -> str:
    """A made-up but well-formed PRC ID number (region, birth date, check character)."""
    born = datetime(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
    body = f"110101{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return body + ric.calc_check_digit(body + "0")  # it expects a check slot


def synthetic_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


async def load_demo(session: AsyncSession, vault: Vault, residents: int = 200) -> DemoInfo:
    """Create the demo data once; later calls reuse it and issue fresh tokens."""
    rng = random.Random(20220404)
    district_id = await session.scalar(select(District.id).where(District.code == DISTRICT))
    if district_id is None:
        district = await reference.create_district(
            session, DistrictCreate(code=DISTRICT, name="示范区", population=residents * 3)
        )
        district_id = district.id
        for code, name, address in POINTS:
            await reference.create_sampling_point(
                session,
                SamplingPointCreate(
                    code=code,
                    name=name,
                    address=address,
                    district=DISTRICT,
                    stations=4,
                    people_per_hour_per_station=60,
                ),
            )
        await reference.create_lab(
            session, LabCreate(code=LAB, name="示范气膜实验室", daily_capacity_tubes=200_000)
        )
    people = [
        Registration(
            "prc_id",
            synthetic_prc_id(rng),
            synthetic_name(rng),
            f"138{rng.randrange(10**8):08d}",
            district_id,
        )
        for _ in range(residents)
    ]
    codes = [code for code, _ in await register_many(session, vault, people)]
    now = datetime.now(UTC).replace(microsecond=0)
    rnd = await rounds.create_round(
        session,
        RoundCreate(
            name=f"示范轮次 {now:%Y-%m-%d %H:%M}",
            pool_size=10,
            districts=[DISTRICT],
            starts_at=now,
            deadline=now + timedelta(hours=24),
        ),
    )
    first_barcodes = {}
    for code, _, _ in POINTS:
        issued = await rounds.issue_range(
            session, rnd.id, RangeCreate(sampling_point=code, count=100)
        )
        first_barcodes[code] = issued.first
    admin = await create_token(session, role="admin", label="demo admin")
    samplers = {
        code: (await create_token(session, role="sampler", sampling_point=code, label="demo")).token
        for code, _, _ in POINTS
    }
    lab = await create_token(session, role="lab", lab=LAB, label="demo lab")
    return DemoInfo(rnd.id, admin.token, samplers, lab.token, codes, first_barcodes)
