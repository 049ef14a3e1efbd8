"""Operations (issue 15): a request id on every answer and every log line, one JSON
access line per request naming the route template, Prometheus metrics, and only real
database connection failures answered as 503."""

from __future__ import annotations

import errno
import io
import json
import logging
import re

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from screening.app import create_app
from screening.errors import is_database_unavailable
from screening.observability import configure_logging
from screening.results import router as results_router


@pytest.fixture
def json_logs():
    """Configure the service's JSON logging into a buffer; put pytest's logging back."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    configure_logging(stream=buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.handlers, root.level = saved[0], saved[1]
        logging.getLogger("uvicorn.access").disabled = False
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)


class TestRequestIds:
    async def test_every_answer_carries_a_request_id(self, scene, client):
        admin = scene.tokens["admin"]
        answers = [
            await client.get("/rounds", headers=admin),  # 200
            await client.get("/rounds/999", headers=admin),  # 404 problem
            await client.get("/rounds"),  # 401
            await client.get("/rounds/1/tubes/%00", headers=admin),  # refused by a guard
            await client.get("/nowhere"),  # no route
        ]
        ids = [r.headers.get("x-request-id") for r in answers]
        assert all(ids) and len(set(ids)) == len(ids), ids

    async def test_a_callers_request_id_is_kept_and_junk_is_replaced(self, client):
        r = await client.get("/tokens/me", headers={"X-Request-ID": "nginx-7f3a.42"})
        assert r.headers["x-request-id"] == "nginx-7f3a.42"
        r = await client.get("/tokens/me", headers={"X-Request-ID": "a b;{}" + "x" * 200})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


class TestJsonLogs:
    async def test_one_json_access_line_per_request_with_route_status_and_duration(
        self, scene, client, json_logs
    ):
        code = scene.codes[0]
        r = await client.get(f"/residents/{code}", headers=scene.tokens["admin"])
        assert r.status_code == 200
        q = await client.post(
            "/results/query", json={"id_number": scene.ids[1], "name": scene.names[1]}
        )
        lines = json_logs()
        access = [line for line in lines if line["logger"] == "screening.access"]
        assert [(a["method"], a["route"], a["status"]) for a in access] == [
            ("GET", "/api/v1/residents/{resident_code}", 200),
            ("POST", "/api/v1/results/query", q.status_code),
        ]
        assert access[0]["request_id"] == r.headers["x-request-id"]
        assert access[1]["request_id"] == q.headers["x-request-id"]
        assert all(a["duration_ms"] >= 0 and a["level"] == "info" for a in access)
        logged = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
        for personal in (code, scene.ids[1], scene.names[1], scene.names[0]):
            assert personal not in logged


class TestErrors:
    @pytest.mark.parametrize(
        "failure",
        [
            OSError(errno.ENOSPC, "No space left on device"),
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/var/x"),
            RuntimeError("a bug"),
        ],
        ids=["disk-full", "missing-file", "bug"],
    )
    async def test_a_failure_that_is_not_the_database_is_a_logged_500(
        self, scene, client, monkeypatch, json_logs, failure
    ):
        async def broken(*_, **__):
            raise failure

        monkeypatch.setattr(results_router.service, "upload_results", broken)
        r = await client.post(
            "/labs/L1/results",
            headers=scene.tokens["L1"],
            files={"file": ("p.csv", b"plate,well,sample\n", "text/csv")},
        )
        assert (r.status_code, r.json()["type"]) == (500, "internal-error")
        assert r.headers["x-request-id"]
        [error] = [line for line in json_logs() if line["level"] == "error"]
        assert error["request_id"] == r.headers["x-request-id"]
        assert "/api/v1/labs/{lab}/results" in error["event"]
        assert "Traceback" in error["exception"] and type(failure).__name__ in error["exception"]

    async def test_a_refused_database_connection_is_503_database_unavailable(
        self, settings, json_logs
    ):
        nowhere = create_async_engine(
            "postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_args={"timeout": 2}
        )
        app = create_app(settings, engine=nowhere)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
            r = await c.get("/tokens/me", headers={"Authorization": "Bearer not-the-admin"})
        await nowhere.dispose()
        assert (r.status_code, r.json()["type"]) == (503, "database-unavailable")
        assert r.headers["retry-after"] and r.headers["x-request-id"]
        warnings = [line for line in json_logs() if line["level"] == "warning"]
        assert any("database unavailable" in w["event"] for w in warnings)
        assert not [line for line in json_logs() if line["level"] == "error"]


def wrapped_like_sqlalchemy(driver_error: Exception) -> DBAPIError:
    """A driver error as SQLAlchemy's asyncpg dialect hands it on: the adapter's error
    (caused by asyncpg's) wrapped in a DBAPIError."""
    try:
        try:
            raise driver_error
        except Exception as error:
            raise RuntimeError(str(error)) from error
    except RuntimeError as adapted:
        return DBAPIError("SELECT 1", None, adapted)


class TestWhatIsAnOutage:
    def test_a_full_server_refusing_connections_is_an_outage(self):
        refused = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
        assert is_database_unavailable(wrapped_like_sqlalchemy(refused))

    def test_a_failing_statement_is_not(self):
        broken = asyncpg.exceptions.UniqueViolationError("duplicate key value")
        assert not is_database_unavailable(wrapped_like_sqlalchemy(broken))
        assert not is_database_unavailable(OSError(errno.ENOSPC, "No space left on device"))


def sample_value(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class TestMetrics:
    async def test_metrics_count_requests_scans_sync_events_rows_and_cases(self, scene, client):
        before = (await client.get("http://test/metrics")).text
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, range(3))
        r = await scene.post(
            f"/rounds/{scene.round_id}/sync",
            {
                "events": [
                    {
                        "event_id": "m-1",
                        "type": "sample",
                        "tube": scene.barcodes["P1"][1],
                        "resident_code": scene.codes[5],
                        "at": "2026-11-22T09:00:00+08:00",
                    }
                ]
            },
            "P1",
        )
        assert r.json()["applied"] == 1
        await scene.ship([tube], box="M1")
        await scene.upload_lis([f"A3,{tube},30,31,26"], "M-PL1")
        r = await client.get("http://test/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        after = r.text

        def delta(name: str, **labels: str) -> float:
            return sample_value(after, name, **labels) - sample_value(before, name, **labels)

        samples = "/api/v1/rounds/{round_id}/samples"
        assert delta("screening_http_requests_total", route=samples, status="201") == 3
        assert delta("screening_scans_total") == 3
        assert delta("screening_sync_events_total", outcome="applied") == 1
        assert delta("screening_ingested_rows_total") == 3  # NTC, PC and the pool
        assert delta("screening_http_request_duration_seconds_count", route=samples) == 3
        for family in (
            "screening_http_request_duration_seconds_bucket",
            "screening_db_pool_connections_in_use",
            "screening_feed_listeners",
        ):
            assert family in after
        # the positive pool's case is uncommitted here: the gauge reads committed state
        assert "screening_open_retest_cases" in after
        for personal in (tube, *scene.codes[:6], *scene.names[:6], *scene.ids[:6]):
            assert personal not in after

    async def test_open_cases_are_read_from_the_database(self, committed_client, make_scene):
        scene = await make_scene(committed_client).build(residents=2)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="M2")
        await scene.upload_lis([f"A3,{tube},30,31,26"], "M-PL2")
        text = (await committed_client.get("http://test/metrics")).text
        assert sample_value(text, "screening_open_retest_cases") == 1
