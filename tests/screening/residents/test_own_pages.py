"""Residents' own endpoints (no token): self-registration for a family on one phone,
each code as a QR, and the query naming the lab and the local report time."""

from __future__ import annotations

import re
from datetime import datetime

from stdnum.cn import ric

from screening.residents.ratelimit import LimitsFailureLimiter
from screening.residents.service import new_resident_code


def prc(region: str, born: str, seq: str = "123") -> str:
    body = region + born + seq
    return body + ric.calc_check_digit(body + "0")


def me(id_number: str, name: str, **extra: object) -> dict[str, object]:
    return {
        "id_type": "prc_id",
        "id_number": id_number,
        "name": name,
        "phone": "13900001111",
        "district": "D2",
        **extra,
    }


class TestSelfRegistration:
    async def test_a_family_registers_on_one_phone_without_a_token(self, client, scene):
        people = [
            me(prc("310115", "19800101"), "王小明"),
            me(prc("310115", "20150601"), "王豆豆"),  # a child
            me(prc("440106", "19450101"), "李秀英", community="幸福里", address="中山路1号"),
        ]
        answers = [await client.post("/residents/self", json=p) for p in people]
        assert [a.status_code for a in answers] == [201, 201, 201]
        assert [a.json()["name_masked"] for a in answers] == ["王*明", "王*豆", "李*英"]
        assert len({a.json()["resident_code"] for a in answers}) == 3

    async def test_registering_again_gives_the_same_code(self, client, scene):
        first = await client.post("/residents/self", json=me(prc("310115", "19800101"), "王小明"))
        again = await client.post("/residents/self", json=me(prc("310115", "19800101"), "王 小明"))
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()

    async def test_someone_elses_number_is_a_conflict_not_their_code(self, client, scene):
        r = await client.post("/residents/self", json=me(scene.ids[0], "冒名者"))
        assert (r.status_code, r.json()["type"]) == (409, "identity-conflict")
        assert scene.codes[0] not in r.text

    async def test_a_phone_is_required(self, client, scene):
        body = me(prc("310115", "19800101"), "王小明")
        del body["phone"]
        r = await client.post("/residents/self", json=body)
        assert r.status_code == 422
        assert ["body", "phone"] in [e["loc"] for e in r.json()["errors"]]

    async def test_refusals_count_towards_the_query_limit(self, app, client, scene):
        app.state.query_limiter = LimitsFailureLimiter("async+memory://", 3)
        for _ in range(3):
            r = await client.post("/residents/self", json=me(scene.ids[0], "冒名者"))
            assert r.status_code == 409
        blocked = await client.post("/residents/self", json=me(prc("310115", "19800101"), "王"))
        assert (blocked.status_code, blocked.json()["type"]) == (429, "too-many-requests")
        assert int(blocked.headers["Retry-After"]) >= 1
        query = await client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        assert query.status_code == 429

    async def test_the_district_list_for_the_page_needs_no_token(self, client, scene):
        r = await client.get("/residents/self/districts")
        assert {d["code"]: d["name"] for d in r.json()} == {"D1": "越秀区", "D2": "海珠区"}


class TestQrCode:
    async def test_the_svg_holds_the_code_and_nothing_personal(self, client, scene):
        r = await client.get(f"/residents/{scene.codes[0]}/qr.svg")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert scene.names[0] not in r.text and scene.ids[0] not in r.text
        assert re.search(r"<svg[^>]*viewBox", r.text)
        # decoded with zbarimg from the /me page in tests/web/test_me_page.py

    async def test_a_mistyped_code_is_a_bad_resident_code(self, client, scene):
        code = scene.codes[0]
        wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
        r = await client.get(f"/residents/{wrong}/qr.svg")
        assert (r.status_code, r.json()["type"]) == (422, "bad-resident-code")

    async def test_an_unknown_code_is_not_found(self, client, scene):
        r = await client.get(f"/residents/{new_resident_code()}/qr.svg")
        assert (r.status_code, r.json()["type"]) == (404, "not-found")


class TestQueryAsCertificate:
    async def test_each_round_names_the_lab_and_the_local_report_time(self, scene):
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="B1", lab="L2")
        await scene.upload_lis([f"A3,{tube},,,26"], "PL1", lab="L2")
        r = await scene.client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        [item] = r.json()["items"]
        assert (item["status"], item["lab"]) == ("negative", "实验室L2")
        reported = datetime.fromisoformat(item["reported_at"])
        assert reported.utcoffset().total_seconds() == 8 * 3600  # Asia/Shanghai
        assert datetime.fromisoformat(item["sampled_at"]).utcoffset().total_seconds() == 8 * 3600

    async def test_no_lab_is_named_before_a_result(self, scene):
        await scene.fill(scene.barcodes["P1"][0], [0])
        r = await scene.client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        [item] = r.json()["items"]
        assert (item["status"], item["lab"], item["reported_at"]) == ("pending", None, None)
