"""Listing and revoking tokens (issue 11): through the API and the command line, never
showing a secret; a revoked token is refused at once."""

from __future__ import annotations

import anyio
from sqlalchemy import text
from typer.testing import CliRunner

from screening.cli import app as cli
from screening.config import get_settings


async def issue(scene, body, label=None):
    issued = await scene.ok("/tokens", {**body, "label": label} if label else body)
    return issued["id"], {"Authorization": f"Bearer {issued['token']}"}


class TestListing:
    async def test_tokens_are_listed_with_what_they_are_bound_to_and_no_secret(self, scene):
        token_id, headers = await issue(
            scene, {"role": "sampler", "sampling_point": "P2"}, "王姐的手机"
        )
        r = await scene.client.get("/tokens", headers=scene.tokens["admin"])
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        mine = next(t for t in items if t["id"] == token_id)
        assert mine["role"] == "sampler" and mine["sampling_point"] == "P2"
        assert mine["lab"] is None and mine["label"] == "王姐的手机"
        assert mine["revoked_at"] is None and mine["created_at"]
        assert {t["role"] for t in items} == {"sampler", "lab"}
        secret = headers["Authorization"].split()[1]
        assert secret not in r.text and "token_hash" not in r.text
        assert all(set(t) == set(mine) for t in items)

    async def test_the_list_pages_and_filters_revoked_tokens(self, scene):
        token_id, _ = await issue(scene, {"role": "lab", "lab": "L2"})
        await scene.ok(f"/tokens/{token_id}/revoke", None)
        admin = scene.tokens["admin"]
        first = (await scene.client.get("/tokens", params={"limit": 2}, headers=admin)).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = (
            await scene.client.get(
                "/tokens", params={"cursor": first["next_cursor"], "limit": 100}, headers=admin
            )
        ).json()
        ids = [t["id"] for t in first["items"] + rest["items"]]
        assert ids == sorted(ids) and len(ids) == 6 and token_id in ids
        revoked = (await scene.client.get("/tokens?revoked=true", headers=admin)).json()
        assert [t["id"] for t in revoked["items"]] == [token_id]
        working = (await scene.client.get("/tokens?revoked=false", headers=admin)).json()
        assert token_id not in [t["id"] for t in working["items"]]


class TestRevocation:
    async def test_a_revoked_token_is_refused_at_once(self, scene):
        token_id, headers = await issue(scene, {"role": "sampler", "sampling_point": "P1"})
        tube = scene.barcodes["P1"][0]
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/samples",
            json={"tube": tube, "resident_code": scene.codes[0]},
            headers=headers,
        )
        assert r.status_code == 201
        r = await scene.client.post(f"/tokens/{token_id}/revoke", headers=scene.tokens["admin"])
        assert r.status_code == 200, r.text
        assert r.json()["id"] == token_id and r.json()["revoked_at"]
        r = await scene.client.post(
            f"/rounds/{scene.round_id}/samples",
            json={"tube": tube, "resident_code": scene.codes[1]},
            headers=headers,
        )
        assert (r.status_code, r.json()["type"]) == (401, "unauthenticated")
        assert (await scene.client.get("/tokens/me", headers=headers)).status_code == 401
        # the other sampler of the point keeps working
        assert (await scene.sample(tube, scene.codes[1])).status_code == 201

    async def test_revoking_twice_keeps_the_first_time_and_audits_once(self, scene, db_session):
        token_id, _ = await issue(scene, {"role": "lab", "lab": "L1"})
        first = await scene.ok(f"/tokens/{token_id}/revoke", None)
        again = await scene.ok(f"/tokens/{token_id}/revoke", None)
        assert again["revoked_at"] == first["revoked_at"]
        audited = (
            await db_session.execute(
                text("SELECT role, action, subject FROM audit_log WHERE action = 'token-revoked'")
            )
        ).all()
        assert [tuple(a) for a in audited] == [("admin", "token-revoked", f"api_token:{token_id}")]

    async def test_an_unknown_token_id_is_not_found(self, scene):
        r = await scene.post("/tokens/999999/revoke", None)
        assert (r.status_code, r.json()["type"]) == (404, "not-found")


class TestCommandLine:
    async def test_tokens_are_listed_and_revoked_on_the_command_line(
        self, database_url, committed_client, make_scene, monkeypatch, tmp_path
    ):
        scene = await make_scene(committed_client).build(residents=1)
        token_id, headers = await issue(scene, {"role": "sampler", "sampling_point": "Q1"}, "丢失")
        monkeypatch.setenv("SCREENING_DATABASE_URL", database_url)
        monkeypatch.setenv("SCREENING_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("COLUMNS", "200")
        get_settings.cache_clear()
        try:
            listed = await anyio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, ["token", "list"])
            )
            revoked = await anyio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, ["token", "revoke", str(token_id)])
            )
            unknown = await anyio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, ["token", "revoke", "999999"])
            )
            only_revoked = await anyio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, ["token", "list", "--revoked"])
            )
        finally:
            get_settings.cache_clear()
        assert listed.exit_code == 0, listed.output
        assert "Asia/Shanghai" in listed.output
        row = next(line for line in listed.output.splitlines() if "丢失" in line)
        assert str(token_id) in row and "sampler" in row and "Q1" in row
        assert headers["Authorization"].split()[1] not in listed.output
        assert revoked.exit_code == 0, revoked.output
        assert f"token {token_id} (sampler for Q1) revoked" in revoked.output
        assert unknown.exit_code == 1 and "no token 999999" in unknown.output
        assert "丢失" in only_revoked.output and "P1" not in only_revoked.output
        r = await committed_client.get("/tokens/me", headers=headers)
        assert r.status_code == 401
