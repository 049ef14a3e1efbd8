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
