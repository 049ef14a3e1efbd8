"""The command line: tokens issued there work against the API."""

from __future__ import annotations

from typer.testing import CliRunner

from screening.cli import app
from screening.config import get_settings


async def test_a_token_created_on_the_command_line_is_accepted(
    database_url, committed_client, monkeypatch, tmp_path
):
    monkeypatch.setenv("SCREENING_DATABASE_URL", database_url)
    monkeypatch.setenv("SCREENING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        import anyio

        result = await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(app, ["token", "create", "--role", "admin"])
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    r = await committed_client.get("/rounds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_an_unknown_role_is_refused(monkeypatch):
    result = CliRunner().invoke(app, ["token", "create", "--role", "root"])
    assert result.exit_code != 0


async def test_files_ingested_on_the_command_line_are_stored(
    database_url, committed_client, make_scene, monkeypatch, tmp_path, engine
):
    from sqlalchemy import text

    scene = await make_scene(committed_client).build(residents=4)
    tubes = scene.barcodes["P1"][:2]
    for k, tube in enumerate(tubes):
        await scene.fill(tube, range(2 * k, 2 * k + 2))
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
    await scene.ok("/boxes", {"barcode": "B1", "lab": "L1", "tubes": tubes}, "P1")
    await scene.ok("/boxes/B1/receive", {}, "L1")
    good = tmp_path / "run1.csv"
    good.write_text(
        "plate,well,sample,role,ORF1ab,N,IC\nPL1,A1,NTC,ntc,,,\nPL1,A2,PC,pc,28,29,27\n"
        f"PL1,A3,{tubes[0]},sample,,,27\nPL1,A4,{tubes[1]},sample,30,31,27\n"
    )
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"\x00\x01")
    monkeypatch.setenv("SCREENING_DATABASE_URL", database_url)
    monkeypatch.setenv("SCREENING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        import anyio

        result = await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(app, ["ingest", "--lab", "L1", str(good), str(junk)])
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1  # the junk file failed
    assert "run1.csv: lis-csv, 4 rows, 4 accepted" in result.output
    assert "junk.csv" in result.output
    async with engine.connect() as conn:
        calls = (await conn.execute(text("SELECT call FROM results ORDER BY call"))).scalars()
        assert list(calls) == ["negative", "positive"]


async def test_the_demo_runs_a_whole_round_end_to_end(
    database_url, committed_client, monkeypatch, tmp_path, engine
):
    """Small, so it fits CI: 2,000 people at 4 points give each lab two plates, enough
    for all four formats."""
    from sqlalchemy import text

    monkeypatch.setenv("SCREENING_DATABASE_URL", database_url)
    monkeypatch.setenv("SCREENING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        import anyio

        result = await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(app, ["demo", "--residents", "2000", "--points", "4"])
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "2,000 people in 200 tubes" in result.output
    assert (tmp_path / "reports" / "round-1.pdf").read_bytes().startswith(b"%PDF")
    async with engine.connect() as conn:
        formats = set((await conn.execute(text("SELECT format FROM uploads"))).scalars())
        cases = (
            await conn.execute(text("SELECT status, discordant FROM retest_cases ORDER BY id"))
        ).all()
        positives = await conn.scalar(
            text("SELECT count(*) FROM retest_members WHERE status = 'positive'")
        )
        samples = await conn.scalar(text("SELECT count(*) FROM samples WHERE kind = 'pool'"))
    assert formats == {"lis-csv", "quantstudio", "biorad-cfx", "slan-96p"}
    assert len(cases) == 6 and {status for status, _ in cases} == {"resolved"}
    assert sorted(d for _, d in cases) == [False] * 5 + [True]  # one discordant
    assert positives == 5
    assert samples == 2000
    token = result.output.split("admin (/)")[1].split("│")[1].strip()
    r = await committed_client.get(
        "/rounds/1/progress", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.json()["registered"] == 2060  # 2,000 pooled + 60 single re-tests
    assert r.json()["confirmed_positive"] == 5
