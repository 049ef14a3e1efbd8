"""Odd inputs that once gave a 500 (issue 16, "Inputs that give 500 today"): each is
now a 4xx problem document that names what is wrong, and changes nothing.

One table, one row per input.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from pydantic import TypeAdapter, ValidationError

from screening.errors import Unprocessable
from screening.schemas import EARLIEST, INT64_MAX, LATEST, Instant, parse_cursor

HUGE = "99999999999999999999999"  # beyond 64 bits

INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)
LIS_HEAD = "plate,well,sample,role,ORF1ab,N,IC\n"


def lis(*rows: str, plate: str = "PX") -> bytes:
    body = [f"{plate},A1,NTC,ntc,,,", f"{plate},A2,PC,pc,28,29,27", *rows]
    return (LIS_HEAD + "\n".join(body) + "\n").encode()


def nul_after_64_kib() -> bytes:
    filler = [f"PX,A3,9{n:013d},sample,,,26" for n in range(3000)]
    return lis(*filler) + b"PX,B1,00000000000\x0019,sample,,,26\n"


def malformed_xlsx() -> bytes:
    """A real workbook whose sheet XML is cut off half-way through a tag."""
    book = io.BytesIO()
    sheet = Workbook().active
    assert sheet is not None
    sheet.append(["Well", "Sample", "Target", "Ct"])
    sheet.append(["A1", "NTC", "ORF1ab", ""])
    sheet.parent.save(book)
    out = io.BytesIO()
    with zipfile.ZipFile(book) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    return out.getvalue()


def upload(data: bytes, name: str = "plate.csv", **form: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/octet-stream")}, "data": form}


@dataclass(frozen=True)
class Odd:
    name: str
    method: str
    path: str  # {r} is the scene's round
    request: Callable[[Any], dict[str, Any]] = lambda scene: {}
    names: str = ""  # what the problem must name (in its detail or an error's loc)
    status: int = 422
    who: str = "admin"
    marks: tuple[Any, ...] = field(default=())


def round_body(starts_at: str, deadline: str) -> Callable[[Any], dict[str, Any]]:
    return lambda scene: {
        "json": {
            "name": "odd",
            "pool_size": 10,
            "districts": ["D1"],
            "starts_at": starts_at,
            "deadline": deadline,
        }
    }


PAGED = ("/districts", "/sampling-points", "/labs", "/rounds", "/rounds/{r}/retests", "/tokens")

ODD = [
    Odd(
        "round starting at .NET's DateTime.MinValue with an offset",
        "POST",
        "/rounds",
        round_body("0001-01-01T00:00:00+01:00", "2026-11-23T06:00:00+08:00"),
        names="starts_at",
    ),
    Odd(
        "round ending in year 9999 behind UTC",
        "POST",
        "/rounds",
        round_body("2026-11-22T06:00:00+08:00", "9999-12-31T23:59:59-01:00"),
        names="deadline",
    ),
    Odd(
        "round from year 1 to year 9999",
        "POST",
        "/rounds",
        round_body("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"),
        names="starts_at",
    ),
    Odd(
        "round in the year 1999",
        "POST",
        "/rounds",
        round_body("1999-12-31T23:00:00+00:00", "2026-11-23T06:00:00+08:00"),
        names="starts_at",
    ),
    *(
        Odd(f"cursor beyond 64 bits on {path}", "GET", f"{path}?cursor={HUGE}", names="cursor")
        for path in PAGED
    ),
    Odd(
        "cursor beyond 64 bits on the review list",
        "GET",
        f"/rounds/{{r}}/retests/review?cursor={HUGE}",
        names="cursor",
        who="L1",
    ),
    Odd("cursor just past bigint", "GET", "/rounds?cursor=9223372036854775808", names="cursor"),
    Odd("negative cursor", "GET", "/labs?cursor=-5", names="cursor"),
    Odd("cursor in superscript digits", "GET", "/labs?cursor=%C2%B2", names="cursor"),
    Odd(
        "Last-Event-ID beyond 64 bits",
        "GET",
        "/events?max_seconds=0.05",
        lambda scene: {"headers": {"Last-Event-ID": HUGE}},
        names="Last-Event-ID",
    ),
    Odd(
        "Last-Event-ID in superscript digits",
        "GET",
        "/events?max_seconds=0.05",
        lambda scene: {"headers": {"Last-Event-ID": "\u00b2".encode("latin-1")}},
        names="Last-Event-ID",
    ),
    Odd("events after beyond 64 bits", "GET", f"/events?after={HUGE}", names="after"),
    Odd("round id beyond 64 bits", "GET", f"/rounds/{HUGE}/plan", names="round_id"),
    Odd(
        "filename over 300 characters",
        "POST",
        "/labs/L1/results",
        lambda scene: upload(lis(), name="p" * 301 + ".csv"),
        names="file name",
    ),
    Odd(
        "plate id over 100 characters in the field",
        "POST",
        "/labs/L1/results",
        lambda scene: upload(
            b"Well,Fluor,Target,Content,Sample,Cq\nA01,FAM,ORF1ab,NTC,,\n",
            name="cfx.csv",
            format="biorad-cfx",
            plate="P" * 101,
        ),
        names="plate",
    ),
    Odd(
        "NUL byte after the first 64 KiB",
        "POST",
        "/labs/L1/results",
        lambda scene: upload(nul_after_64_kib()),
        names="NUL",
    ),
    Odd(
        "CSV cell over 131,072 characters",
        "POST",
        "/labs/L1/results",
        lambda scene: upload(lis("PX,A3," + "9" * 131_073 + ",sample,,,26")),
        names="line",
    ),
    Odd(
        "xlsx with malformed XML",
        "POST",
        "/labs/L1/results",
        lambda scene: upload(malformed_xlsx(), name="slan.xlsx", format="slan-96p"),
        names="",
    ),
]


def named_in(problem: dict[str, Any], what: str) -> bool:
    locs = " ".join(".".join(map(str, e.get("loc", []))) for e in problem.get("errors") or [])
    return what.lower() in f"{problem.get('detail', '')} {locs}".lower()


@pytest.mark.parametrize("odd", [pytest.param(o, id=o.name, marks=o.marks) for o in ODD])
async def test_an_odd_input_is_a_problem_that_names_it_and_changes_nothing(scene, odd):
    before = await counts(scene)
    url = odd.path.format(r=scene.round_id)
    extra = odd.request(scene)
    headers = {**scene.tokens[odd.who], **extra.pop("headers", {})}
    r = await scene.client.request(odd.method, url, headers=headers, **extra)
    assert r.status_code == odd.status, r.text[:500]
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == odd.status and problem["type"] and problem["detail"]
    assert named_in(problem, odd.names), problem
    assert await counts(scene) == before


async def counts(scene: Any) -> tuple[int, int]:
    """Rounds and the lab's uploads held: what an odd request could have added."""
    rounds = await scene.client.get("/rounds", headers=scene.tokens["admin"])
    uploads = await scene.client.get("/labs/L1/uploads", headers=scene.tokens["admin"])
    return len(rounds.json()["items"]), len(uploads.json()["items"])


class TestTheEdgesOfTheTimeRange:
    async def test_a_round_at_the_edges_of_the_range_is_created_and_planned(self, scene):
        r = await scene.post(
            "/rounds",
            {
                "name": "edges",
                "pool_size": 10,
                "districts": ["D1"],
                "starts_at": "2000-01-01T08:00:00+08:00",
                "deadline": "2099-12-31T23:59:59+00:00",
            },
        )
        assert r.status_code == 201, r.text
        plan = await scene.client.get(
            f"/rounds/{r.json()['id']}/plan", headers=scene.tokens["admin"]
        )
        assert plan.status_code == 200, plan.text
        assert plan.json()["round_hours"] > 800_000

    async def test_a_cursor_given_out_is_taken_back(self, scene):
        first = (await scene.client.get("/labs?limit=1", headers=scene.tokens["admin"])).json()
        r = await scene.client.get(
            f"/labs?limit=1&cursor={first['next_cursor']}", headers=scene.tokens["admin"]
        )
        assert r.status_code == 200
        assert r.json()["items"][0]["code"] != first["items"][0]["code"]


class TestCursorAndTimeRulesHoldForAnyInput:
    @given(st.text(max_size=40))
    def test_a_cursor_is_a_bigint_given_back_or_a_problem_naming_it(self, raw):
        try:
            value = parse_cursor(raw)
        except Unprocessable as problem:
            assert problem.errors and problem.errors[0]["loc"] == ["query", "cursor"]
        else:
            assert 0 <= value <= INT64_MAX and value == int(raw.strip())

    @given(st.integers(min_value=0, max_value=2**70))
    def test_every_number_a_bigint_holds_is_a_cursor(self, n):
        if n <= INT64_MAX:
            assert parse_cursor(str(n)) == n
        else:
            with pytest.raises(Unprocessable):
                parse_cursor(str(n))

    @given(
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
        )
    )
    def test_any_time_with_an_offset_is_kept_or_refused_never_an_error(self, moment):
        stamp = moment.isoformat()
        try:
            kept = INSTANT.validate_python(stamp)
        except ValidationError as problem:  # a 422 naming the field; anything else is a 500
            assert problem.errors()
        else:
            assert EARLIEST <= kept.astimezone(UTC) < LATEST


# Inputs whose problem lies in one line of an otherwise readable file: the file is
# taken, that line is rejected with a reason naming the problem, and nothing of it is
# stored (an upload's other lines would be, as for any rejected line).
ODD_LINES = [
    pytest.param(
        "/labs/L1/results", lambda: upload(lis(plate="P" * 101)), "plate", id="plate id over 100"
    ),
    pytest.param(
        "/residents/import",
        lambda: upload(
            b"id_type,id_number,name,phone,district\nprc_id,440106197501011232,Bob\x00,,D1\n",
            name="census.csv",
        ),
        "NUL",
        id="census with a NUL in a column",
    ),
]


@pytest.mark.parametrize(("path", "request_of", "names"), ODD_LINES)
async def test_an_odd_line_is_rejected_by_name_and_stores_nothing(scene, path, request_of, names):
    r = await scene.client.post(path, headers=scene.tokens["admin"], **request_of())
    assert r.status_code == 200, r.text[:500]
    answer = r.json()
    assert answer["rejected"] and all(
        names.lower() in f"{line['type']} {line['detail']}".lower() for line in answer["rejected"]
    ), answer["rejected"]
    assert answer.get("accepted", 0) == 0 and answer.get("created", 0) == 0
