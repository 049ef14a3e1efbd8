"""Several processes, one truth (issue 15), against a real `screening serve --workers 2`
(one server for the module: spawning costs seconds). Every request goes over a new
connection, so the kernel spreads them over both workers; the JSON log's pid shows
that both took part."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from screening.cli import uvicorn_options
from screening.retests.sweeper import SWEEP_LOCK

POSITIVE = "30,31,26"


def dsn(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_connections(**transport: str) -> httpx.AsyncClient:
    """A client that opens a new connection for every request."""
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0), **transport
        ),
        timeout=30,
    )


def log_lines(live) -> list[dict]:
    return [json.loads(line) for line in live.log_path.read_text().splitlines() if line]


def pids_serving(live, route: str, since: int = 0) -> set[int]:
    """The workers that answered ``route``, in the log's lines from ``since`` on."""
    return {
        line["pid"]
        for line in log_lines(live)[since:]
        if line.get("logger") == "screening.access" and line.get("route") == route
    }


async def in_both_workers(live, route: str, one_round, rounds: int = 5) -> int:
    """Run ``one_round(n)`` (requests over new connections, each answer asserted) until
    both workers answered ``route`` within one round; answers how many rounds ran. The
    kernel picks the worker of each connection, and once gave one worker all of a
    round's (seen in CI): such a round proves nothing across workers."""
    for n in range(rounds):
        since = len(log_lines(live))
        await one_round(n)
        if len(pids_serving(live, route, since)) == 2:
            return n + 1
    raise AssertionError(f"one worker answered every {route} in {rounds} rounds")


@pytest.fixture(scope="module")
async def fleet(server_url, tmp_path_factory):
    from tests.conftest import serving

    async with serving(
        server_url,
        tmp_path_factory.mktemp("fleet"),
        workers="2",
        forwarded_allow_ips="127.0.0.1",
        token_cache_seconds="30",
        overdue_sweep_seconds="0.2",
        retest_member_overdue_minutes="0",
        retest_case_overdue_minutes="0",
    ) as live:
        for _ in range(300):  # /healthz answered by one: wait for the second worker
            started = [
                line for line in log_lines(live) if line["event"] == "Application startup complete."
            ]
            if len(started) == 2:
                break
            await asyncio.sleep(0.1)
        yield live


async def query(client, live, person: int, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    r = await client.post(
        live.base + "/api/v1/results/query",
        json={"id_number": f"11010519800101{person:03d}X", "name": "无此人"},
        headers=headers,
    )
    return r.status_code


class TestQueryLimit:
    async def test_the_failure_limit_holds_across_workers_per_real_client(self, fleet):
        async with fresh_connections() as client:

            async def one_client(n: int) -> None:  # a new client behind the proxy a round
                real_client = f"203.0.113.{10 + n}"
                codes = [await query(client, fleet, i, real_client) for i in range(10)]
                assert codes == [404] * 10
                codes = [await query(client, fleet, i, real_client) for i in range(4)]
                assert codes == [429] * 4  # whichever worker answers

            await in_both_workers(fleet, "/api/v1/results/query", one_client)
            # another client behind the same trusted proxy has its own count
            assert await query(client, fleet, 1, "203.0.113.8") == 404

    async def test_x_forwarded_for_from_an_untrusted_address_is_ignored(self, fleet):
        async with fresh_connections(local_address="127.0.0.2") as client:
            # each claims another client; all are 127.0.0.2, which used them up
            codes = [await query(client, fleet, i, f"198.51.100.{i}") for i in range(11)]
        assert codes == [404] * 10 + [429]

    def test_without_forwarded_allow_ips_no_proxy_is_trusted(self):
        assert uvicorn_options(None)["proxy_headers"] is False
        options = uvicorn_options("10.0.0.5")
        assert (options["proxy_headers"], options["forwarded_allow_ips"]) == (True, "10.0.0.5")


@pytest.fixture(scope="module")
async def scene(fleet):
    """The conftest Scene (districts, points, labs, a round, tokens) on the fleet."""
    from tests.conftest import Scene

    async with httpx.AsyncClient(base_url=fleet.base + "/api/v1", timeout=60) as client:
        world = Scene(client)
        world.tokens["admin"] = {"Authorization": f"Bearer {fleet.admin_token}"}
        yield await world.build(residents=2)


class TestRevocation:
    async def test_a_revoked_token_is_refused_by_every_worker_within_a_second(self, fleet, scene):
        issued = await scene.ok("/tokens", {"role": "sampler", "sampling_point": "P1"})
        me = fleet.base + "/api/v1/tokens/me"
        headers = {"Authorization": f"Bearer {issued['token']}"}
        async with fresh_connections() as client:
            before: list[int] = []

            async def twelve(_: int) -> None:
                before.extend(
                    [(await client.get(me, headers=headers)).status_code for _ in range(12)]
                )

            await in_both_workers(fleet, "/api/v1/tokens/me", twelve)
            assert before == [200] * len(before)  # now cached in both workers (30 s)
            r = await scene.client.post(
                f"/tokens/{issued['id']}/revoke", headers=scene.tokens["admin"]
            )
            assert r.status_code == 200
            await asyncio.sleep(1.0)
            after = [(await client.get(me, headers=headers)).status_code for _ in range(12)]
        assert after == [401] * 12


class TestOverdueSweep:
    async def test_one_worker_sweeps_and_flags_each_late_case_once(self, fleet, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="SWEEP")
        await scene.upload_lis([f"A3,{tube},{POSITIVE}"], "SWEEP-1")
        conn = await asyncpg.connect(dsn(fleet.db_url))
        try:
            for _ in range(100):
                kinds = dict(
                    await conn.fetch("SELECT kind, count(*) FROM retest_events GROUP BY kind")
                )
                if kinds.get("case-overdue") and kinds.get("member-overdue") == 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # several more sweeps, by whoever leads
            kinds = dict(await conn.fetch("SELECT kind, count(*) FROM retest_events GROUP BY kind"))
            holders = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = $1 AND objid = $2 AND objsubid = 1",
                SWEEP_LOCK >> 32,
                SWEEP_LOCK & 0xFFFFFFFF,
            )
        finally:
            await conn.close()
        assert (kinds["case-overdue"], kinds["member-overdue"]) == (1, 2)
        assert holders == 1
        leaders = [line for line in log_lines(fleet) if "this process leads" in line["event"]]
        assert len(leaders) == 1


class TestOperations:
    async def test_one_process_answers_its_metrics(self, live):
        async with fresh_connections() as client:
            assert (await client.get(live.base + "/healthz")).status_code == 200
            text = (await client.get(live.base + "/metrics")).text
        line = 'screening_http_requests_total{method="GET",route="/healthz",status="200"}'
        assert line in text

    async def test_metrics_add_up_every_worker(self, fleet):
        async with fresh_connections() as client:

            async def ten(_: int) -> None:
                for _ in range(10):
                    r = await client.get(fleet.base + "/api/v1/districts")
                    assert r.status_code == 401

            sent = 10 * await in_both_workers(fleet, "/api/v1/districts", ten)
            scrapes = [(await client.get(fleet.base + "/metrics")).text for _ in range(4)]
        line = 'screening_http_requests_total{method="GET",route="/api/v1/districts",status="401"}'
        for text in scrapes:
            assert f"{line} {sent}.0" in text

    async def test_every_log_line_is_json_and_access_lines_carry_the_request_id(self, fleet):
        async with fresh_connections() as client:
            r = await client.get(fleet.base + "/healthz", headers={"X-Request-ID": "ops-test-1"})
        assert r.headers["x-request-id"] == "ops-test-1"
        await asyncio.sleep(0.2)
        lines = log_lines(fleet)  # json.loads of every line: raises on any other
        [access] = [line for line in lines if line.get("request_id") == "ops-test-1"]
        assert (access["route"], access["status"], access["level"]) == ("/healthz", 200, "info")
        assert access["duration_ms"] >= 0
