"""`screening demo`: a whole synthetic round, end to end, through the service's own HTTP
API (in process), so a newcomer sees every part working in one command.

A district of ``residents`` people registered from a census file, ``points`` sampling
points swabbing 10-in-1 (offline sync batches, as busy points send them), boxes of 50
to two labs, the labs' results in all four instrument formats (lis-csv and QuantStudio
at one lab, Bio-Rad CFX and SLAN-96P xlsx at the other), a handful of positive pools
de-pooled to their positive person, one discordant case, and the evening report.
Rerunning adds another round to the same reference data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lab_io import synthetic
from screening.app import create_app
from screening.config import Settings
from screening.db import make_sessionmaker
from screening.demo import synthetic_name, synthetic_prc_id
from screening.tokens.service import create_token

DISTRICT = "DEMO-SH"
LABS = (("LAB-A", "浦东气膜实验室 A"), ("LAB-B", "浦西方舱实验室 B"))
STREETS = "陆家嘴花木洋泾塘桥潍坊周家渡上钢东明三林北蔡张江金桥唐镇曹路高东高行合庆川沙"
BOX_SIZE = 50
POSITIVE_POOLS = 6  # the first of them turns out discordant
ROUND_NAME = "示范全员筛查"


@dataclass
class DemoRound:
    round_id: int = 0
    admin_token: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    people: int = 0
    tubes: int = 0
    plates: dict[str, int] = field(default_factory=dict)  # format -> files uploaded
    cases: int = 0
    confirmed: int = 0
    discordant: int = 0
    report: Path | None = None


class Api:
    """The service's HTTP API in process, failing loudly on anything but success."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, token: str, **kw: Any) -> Any:
        r = await self.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kw
        )
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def _census(rng: random.Random, people: int) -> list[str]:
    ids: set[str] = set()
    lines = ["id_type,id_number,name,phone,district"]
    while len(ids) < people:
        number = synthetic_prc_id(rng)
        if number in ids:
            continue
        ids.add(number)
        lines.append(
            f"prc_id,{number},{synthetic_name(rng)},138{rng.randrange(10**8):08d},{DISTRICT}"
        )
    return lines


async def run_demo_round(
    engine: AsyncEngine,
    settings: Settings,
    *,
    residents: int = 100_000,
    points: int = 40,
    console: Console | None = None,
    seed: int = 20220404,
) -> DemoRound:
    console = console or Console()
    rng = random.Random(seed)
    out = DemoRound()
    async with make_sessionmaker(engine).begin() as session:
        out.admin_token = (await create_token(session, role="admin", label="demo")).token
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    columns = (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with httpx.AsyncClient(
        transport=transport, base_url="http://demo/api/v1", timeout=600
    ) as client:
        api = Api(client)
        admin = out.admin_token
        with Progress(*columns, console=console) as bars:
            await _reference(api, admin, residents, points, out)
            codes = await _register(api, admin, rng, residents, bars)
            point_codes = [f"PT{k:03d}" for k in range(1, points + 1)]
            per_point = -(-residents // points)
            now = datetime.now(UTC).replace(microsecond=0)
            rnd = await api.call(
                "POST",
                "/rounds",
                admin,
                json={
                    "name": f"{ROUND_NAME} {now:%m-%d %H:%M}",
                    "pool_size": 10,
                    "districts": [DISTRICT],
                    "starts_at": (now - timedelta(hours=6)).isoformat(),
                    "deadline": (now + timedelta(hours=18)).isoformat(),
                },
            )
            out.round_id = rid = rnd["id"]
            barcodes: dict[str, list[str]] = {}
            for code in point_codes:
                issued = await api.call(
                    "POST",
                    f"/rounds/{rid}/barcodes",
                    admin,
                    json={"sampling_point": code, "count": -(-per_point // 10) + 40},
                )
                listing = await api.call(
                    "GET", f"/rounds/{rid}/barcodes/{issued['range_id']}", admin
                )
                barcodes[code] = listing["barcodes"]
            tubes_of = await _swab(api, out, rid, point_codes, codes, barcodes, per_point, bars)
            lab_of_point = {code: LABS[k % 2][0] for k, code in enumerate(point_codes)}
            at_lab = await _ship(api, out, point_codes, tubes_of, lab_of_point, bars)
            positives = rng.sample(sorted(t for ts in at_lab.values() for t in ts), POSITIVE_POOLS)
            await _results(api, out, at_lab, set(positives), rng, bars)
            await _depool(api, out, rid, positives, barcodes, per_point, lab_of_point, rng, bars)
        report = await api.call("GET", f"/rounds/{rid}/report.pdf", admin)
        folder = Path(settings.data_dir) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        out.report = folder / f"round-{rid}.pdf"
        out.report.write_bytes(report.content)
    return out


async def _reference(api: Api, admin: str, residents: int, points: int, out: DemoRound) -> None:
    existing = await api.call("GET", "/districts?limit=1000", admin)
    if any(d["code"] == DISTRICT for d in existing["items"]):
        return
    await api.call(
        "POST",
        "/districts",
        admin,
        json={"code": DISTRICT, "name": "浦东示范区", "population": residents},
    )
    for k in range(1, points + 1):
        street = STREETS[(k - 1) % (len(STREETS) // 2) * 2 : (k - 1) % (len(STREETS) // 2) * 2 + 2]
        await api.call(
            "POST",
            "/sampling-points",
            admin,
            json={
                "code": f"PT{k:03d}",
                "name": f"{street}街道第{k}采样点",
                "address": f"{street}路{k * 17}号",
                "district": DISTRICT,
                "stations": 6,
                "people_per_hour_per_station": 60,
            },
        )
    for code, name in LABS:
        await api.call(
            "POST",
            "/labs",
            admin,
            json={"code": code, "name": name, "daily_capacity_tubes": 200_000},
        )


async def _register(
    api: Api, admin: str, rng: random.Random, residents: int, bars: Progress
) -> list[str]:
    lines = _census(rng, residents)
    task = bars.add_task("登记居民 registering residents", total=residents)
    codes: list[str] = []
    chunk = 10_000
    for start in range(1, len(lines), chunk):
        body = "\n".join([lines[0], *lines[start : start + chunk]]) + "\n"
        answer = await api.call(
            "POST",
            "/residents/import",
            admin,
            files={"file": ("census.csv", body.encode(), "text/csv")},
        )
        codes += [c["resident_code"] for c in answer["codes"]]
        bars.advance(task, len(answer["codes"]))
    return codes


async def _token(api: Api, out: DemoRound, who: str, body: dict[str, str]) -> str:
    if who not in out.tokens:
        out.tokens[who] = (await api.call("POST", "/tokens", out.admin_token, json=body))["token"]
    return out.tokens[who]


async def _sync(api: Api, rid: int, token: str, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5_000):
        answer = await api.call(
            "POST", f"/rounds/{rid}/sync", token, json={"events": events[start : start + 5_000]}
        )
        if answer["rejected"]:
            raise RuntimeError(f"sync refused {answer['rejected'][:3]}")


async def _swab(
    api: Api,
    out: DemoRound,
    rid: int,
    point_codes: Sequence[str],
    codes: Sequence[str],
    barcodes: dict[str, list[str]],
    per_point: int,
    bars: Progress,
) -> dict[str, list[str]]:
    """Every resident swabbed 10-in-1 at their point, sent as offline sync batches."""
    task = bars.add_task("采样 swabbing (10-in-1, offline sync)", total=len(codes))
    tubes_of: dict[str, list[str]] = {}
    at = datetime.now(UTC) - timedelta(hours=5)
    for k, point in enumerate(point_codes):
        token = await _token(api, out, point, {"role": "sampler", "sampling_point": point})
        people = codes[k * per_point : (k + 1) * per_point]
        events, tubes = [], []
        for i, code in enumerate(people):
            tube = barcodes[point][i // 10]
            if i % 10 == 0:
                tubes.append(tube)
            events.append(
                {
                    "event_id": f"demo-{rid}-{point}-{i}",
                    "type": "sample",
                    "tube": tube,
                    "resident_code": code,
                    "at": (at + timedelta(seconds=20 * i)).isoformat(),
                }
            )
        if len(people) % 10:
            events.append(
                {"event_id": f"demo-{rid}-{point}-seal", "type": "seal", "tube": tubes[-1]}
            )
        await _sync(api, rid, token, events)
        tubes_of[point] = tubes
        out.people += len(people)
        out.tubes += len(tubes)
        bars.advance(task, len(people))
    return tubes_of


async def _ship(
    api: Api,
    out: DemoRound,
    point_codes: Sequence[str],
    tubes_of: dict[str, list[str]],
    lab_of_point: dict[str, str],
    bars: Progress,
) -> dict[str, list[str]]:
    """Boxes of 50 from each point to its lab: packed, dispatched, received."""
    total = sum(-(-len(t) // BOX_SIZE) for t in tubes_of.values())
    task = bars.add_task("转运 boxes to the labs", total=total)
    at_lab: dict[str, list[str]] = {lab: [] for lab, _ in LABS}
    for point in point_codes:
        sampler = out.tokens[point]
        lab = lab_of_point[point]
        lab_token = await _token(api, out, lab, {"role": "lab", "lab": lab})
        tubes = tubes_of[point]
        for n, start in enumerate(range(0, len(tubes), BOX_SIZE)):
            box = f"BOX-{out.round_id}-{point}-{n:03d}"
            content = tubes[start : start + BOX_SIZE]
            await api.call(
                "POST", "/boxes", sampler, json={"barcode": box, "lab": lab, "tubes": content}
            )
            await api.call("POST", f"/boxes/{box}/dispatch", sampler, json={})
            await api.call("POST", f"/boxes/{box}/receive", lab_token, json={})
            at_lab[lab] += content
            bars.advance(task)
    return at_lab


def _pool_ct(rng: random.Random, positive: bool) -> dict[str, float | None]:
    if positive:
        return {
            "ORF1ab": round(rng.uniform(24, 33), 2),
            "N": round(rng.uniform(24, 33), 2),
            "IC": 26.0,
        }
    return {"ORF1ab": None, "N": None, "IC": round(rng.uniform(24, 29), 2)}


async def _upload(api: Api, out: DemoRound, lab: str, fmt: str, name: str, data: bytes) -> None:
    answer = await api.call(
        "POST",
        f"/labs/{lab}/results",
        out.tokens[lab],
        files={"file": (name, data)},
    )
    if answer["format"] != fmt or answer["rejected_total"]:
        raise RuntimeError(f"{name}: read as {answer['format']}, rejected {answer['rejected'][:3]}")
    out.plates[fmt] = out.plates.get(fmt, 0) + 1


async def _results(
    api: Api,
    out: DemoRound,
    at_lab: dict[str, list[str]],
    positives: set[str],
    rng: random.Random,
    bars: Progress,
) -> None:
    """Each lab's plates in its instruments' formats; no format named: detected."""
    plates_by_lab = {
        lab: [
            synthetic.plate_of(
                f"{lab[-1]}{out.round_id:02d}{n:04d}",
                [(t, _pool_ct(rng, t in positives)) for t in tubes[start : start + 94]],
            )
            for n, start in enumerate(range(0, len(tubes), 94))
        ]
        for lab, tubes in at_lab.items()
    }
    task = bars.add_task(
        "出结果 lab results (4 formats)", total=sum(map(len, plates_by_lab.values()))
    )
    a, b = (lab for lab, _ in LABS)
    plates_a = plates_by_lab[a]
    bulk = plates_a[: len(plates_a) * 3 // 4]
    if bulk:
        await _upload(api, out, a, "lis-csv", "lis-export.csv", synthetic.lis_csv(bulk))
        bars.advance(task, len(bulk))
    for plate in plates_a[len(bulk) :]:
        await _upload(
            api, out, a, "quantstudio", f"{plate.plate}.txt", synthetic.quantstudio(plate)
        )
        bars.advance(task)
    for n, plate in enumerate(plates_by_lab[b]):
        if n % 2:
            await _upload(
                api, out, b, "slan-96p", f"{plate.plate}.xlsx", synthetic.slan_xlsx(plate)
            )
        else:
            await _upload(api, out, b, "biorad-cfx", *synthetic.biorad_cfx(plate))
        bars.advance(task)


async def _depool(
    api: Api,
    out: DemoRound,
    rid: int,
    positives: Sequence[str],
    barcodes: dict[str, list[str]],
    per_point: int,
    lab_of_point: dict[str, str],
    rng: random.Random,
    bars: Progress,
) -> None:
    """Every member of each positive pool swabbed alone; one positive person per case,
    except the first case: everyone negative, a discordant case for review."""
    cases = (
        await api.call("GET", f"/rounds/{rid}/retests?status=open&limit=1000", out.admin_token)
    )["items"]
    out.cases = len(cases)
    task = bars.add_task(
        "复核 de-pooling: single re-tests", total=sum(len(c["members"]) for c in cases)
    )
    spare = {point: iter(codes[-(-per_point // 10) :]) for point, codes in barcodes.items()}
    singles: dict[str, list[tuple[str, dict[str, float | None]]]] = {}
    for n, case in enumerate(sorted(cases, key=lambda c: positives.index(c["pool_tube"]))):
        point = case["sampling_point"]
        culprit = None if n == 0 else rng.randrange(len(case["members"]))
        events, tubes = [], []
        for k, member in enumerate(case["members"]):
            tube = next(spare[point])
            tubes.append(tube)
            events.append(
                {
                    "event_id": f"demo-{rid}-single-{tube}",
                    "type": "sample",
                    "tube": tube,
                    "resident_code": member["resident_code"],
                    "kind": "single",
                    "at": datetime.now(UTC).isoformat(),
                }
            )
            positive = k == culprit
            singles.setdefault(lab_of_point[point], []).append((tube, _pool_ct(rng, positive)))
            out.confirmed += positive
        out.discordant += culprit is None
        await _sync(api, rid, out.tokens[point], events)
        box = f"BOX-{rid}-{point}-SINGLES-{n}"
        lab = lab_of_point[point]
        await api.call(
            "POST", "/boxes", out.tokens[point], json={"barcode": box, "lab": lab, "tubes": tubes}
        )
        await api.call("POST", f"/boxes/{box}/dispatch", out.tokens[point], json={})
        await api.call("POST", f"/boxes/{box}/receive", out.tokens[lab], json={})
        bars.advance(task, len(tubes))
    for lab, rows in singles.items():
        for n, start in enumerate(range(0, len(rows), 94)):
            plate = synthetic.plate_of(f"S{lab[-1]}{rid:02d}{n:03d}", rows[start : start + 94])
            await _upload(
                api, out, lab, "lis-csv", f"singles-{lab}-{n}.csv", synthetic.lis_csv([plate])
            )


async def fresh_demo_tokens(engine: AsyncEngine, *, samplers: int = 2) -> dict[str, str]:
    """New tokens for a demo that is already loaded: only hashes are kept, so the first
    run's tokens cannot be shown again. Keys as in ``DemoRound.tokens`` plus "admin"."""
    async with make_sessionmaker(engine).begin() as session:
        tokens = {"admin": (await create_token(session, role="admin", label="demo")).token}
        for lab, _ in LABS:
            tokens[lab] = (await create_token(session, role="lab", lab=lab, label="demo")).token
        for k in range(1, samplers + 1):
            point = f"PT{k:03d}"
            issued = await create_token(session, role="sampler", sampling_point=point, label="demo")
            tokens[point] = issued.token
    return tokens


async def has_demo_round(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT 1 FROM rounds WHERE name LIKE :name LIMIT 1"), {"name": f"{ROUND_NAME}%"}
        )
    return found is not None


def summary_lines(out: DemoRound, base_url: str) -> list[str]:
    formats = ", ".join(f"{fmt} {n}" for fmt, n in sorted(out.plates.items()))
    return [
        f"round {out.round_id}: {out.people:,} people in {out.tubes:,} tubes (10-in-1)",
        f"uploads by format: {formats}",
        f"{out.cases} positive pools de-pooled: {out.confirmed} confirmed positive,"
        f" {out.discordant} discordant (on the review list)",
        f"report: {out.report}",
        f"dashboard: {base_url}/  (admin token below)",
    ]
