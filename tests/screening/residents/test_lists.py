"""Lists for community workers: code sheets (PDF cards for people without phones) and
who has not been swabbed yet (paged JSON, audited CSV, per-district counts)."""

from __future__ import annotations

import csv
import io

from pypdf import PdfReader
from sqlalchemy import text


async def add_people(scene, community: str, people: list[tuple[str, str]]) -> list[str]:
    """Register (other-ID, name) pairs in D1 with ``community``; their codes."""
    codes = []
    for number, name in people:
        body = await scene.ok(
            "/residents",
            {
                "id_type": "other",
                "id_number": number,
                "name": name,
                "phone": "13700001111",
                "district": "D1",
                "community": community,
                "address": "幸福路8号2栋301",
            },
        )
        codes.append(str(body["resident_code"]))
    return codes


async def audit(db_session) -> list[tuple]:
    rows = await db_session.execute(text("SELECT role, action, subject, detail FROM audit_log"))
    return [tuple(r) for r in rows]


class TestCodeSheets:
    async def test_each_resident_gets_a_card_with_full_name_masked_id_and_code(
        self, scene, db_session
    ):
        codes = await add_people(scene, "幸福里", [("OLD001", "赵老太"), ("OLD002", "钱老伯")])
        r = await scene.client.get(
            "/districts/D1/code-sheets.pdf",
            params={"community": "幸福里"},
            headers=scene.tokens["admin"],
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        pdf = PdfReader(io.BytesIO(r.content))
        page = "".join(p.extract_text() for p in pdf.pages)
        assert "赵老太" in page and "钱老伯" in page and "幸福里" in page
        assert "O****1" in page and "OLD001" not in page
        for code in codes:
            assert f"{code[:7]} {code[7:]}" in page
        assert scene.names[0] not in page  # another community's resident
        assert await audit(db_session) == [
            ("admin", "code-sheets", "district:D1", {"community": "幸福里", "cards": 2})
        ]

    async def test_a_whole_district_fills_pages_of_eight(self, scene):
        r = await scene.client.get("/districts/D1/code-sheets.pdf", headers=scene.tokens["admin"])
        pdf = PdfReader(io.BytesIO(r.content))
        assert len(pdf.pages) == 4  # 30 residents, 8 a page
        assert "第 4/4 页" in pdf.pages[3].extract_text()

    async def test_more_cards_than_allowed_asks_to_print_by_community(self, app, scene, db_session):
        app.state.settings = app.state.settings.model_copy(update={"code_sheet_max_cards": 10})
        r = await scene.client.get("/districts/D1/code-sheets.pdf", headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (422, "too-many-cards")
        assert "按社区分批" in r.json()["detail"]
        assert await audit(db_session) == []

    async def test_an_unknown_district_is_not_found(self, scene):
        r = await scene.client.get("/districts/NOPE/code-sheets.pdf", headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (404, "not-found")

    async def test_only_the_command_center_prints_them(self, scene):
        for who in ("P1", "L1"):
            r = await scene.client.get("/districts/D1/code-sheets.pdf", headers=scene.tokens[who])
            assert r.status_code == 403


class TestUnsampled:
    async def test_the_list_holds_everyone_not_swabbed_masked_with_the_total(self, scene):
        await scene.fill(scene.barcodes["P1"][0], range(10))
        first = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled",
            params={"limit": 15},
            headers=scene.tokens["admin"],
        )
        body = first.json()
        assert body["total"] == 20 and len(body["items"]) == 15 and body["next_cursor"]
        rest = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled",
            params={"limit": 15, "cursor": body["next_cursor"]},
            headers=scene.tokens["admin"],
        )
        codes = [i["resident_code"] for i in body["items"] + rest.json()["items"]]
        assert codes == scene.codes[10:]
        assert rest.json()["next_cursor"] is None
        item = body["items"][0]
        assert item["name_masked"] == "张**0" and item["phone_masked"] == "138****0010"
        assert scene.ids[10] not in first.text and scene.names[10] not in first.text

    async def test_it_filters_by_community_and_district(self, scene):
        codes = await add_people(scene, "幸福里", [("X00001", "孙一"), ("X00002", "孙二")])
        await scene.sample(scene.barcodes["P1"][0], codes[0])
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled",
            params={"community": "幸福里", "district": "D1"},
            headers=scene.tokens["admin"],
        )
        assert [i["resident_code"] for i in r.json()["items"]] == [codes[1]]
        assert r.json()["total"] == 1 and r.json()["items"][0]["community"] == "幸福里"
        none = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled",
            params={"district": "D2"},
            headers=scene.tokens["admin"],
        )
        assert none.json() == {"items": [], "next_cursor": None, "total": 0}

    async def test_the_csv_has_full_names_and_phones_and_is_audited(self, scene, db_session):
        codes = await add_people(scene, "幸福里", [("Y00001", "周=一"), ("Y00002", "周二")])
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled.csv",
            params={"community": "幸福里"},
            headers=scene.tokens["admin"],
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[0] == ["区", "社区", "姓名", "电话", "住址", "证件号码(打码)", "居民码"]
        assert [(row[1], row[2], row[3], row[4], row[6]) for row in rows[1:]] == [
            ("幸福里", "周=一", "13700001111", "幸福路8号2栋301", codes[0]),
            ("幸福里", "周二", "13700001111", "幸福路8号2栋301", codes[1]),
        ]
        assert rows[1][0] == "D1 越秀区" and rows[1][5] == "Y****1"
        assert await audit(db_session) == [
            (
                "admin",
                "unsampled-csv",
                f"round:{scene.round_id}",
                {"district": None, "community": "幸福里", "rows": 2},
            )
        ]

    async def test_a_name_that_looks_like_a_formula_stays_text(self, scene):
        await add_people(scene, "幸福里", [("Z00001", "=1+2")])
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled.csv",
            params={"community": "幸福里"},
            headers=scene.tokens["admin"],
        )
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert rows[1][2] == "'=1+2"

    async def test_the_dashboard_counts_per_district(self, scene):
        await scene.fill(scene.barcodes["P1"][0], range(4))
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/unsampled/districts", headers=scene.tokens["admin"]
        )
        assert r.json() == [
            {"district": "D1", "name": "越秀区", "registered": 30, "unsampled": 26},
            {"district": "D2", "name": "海珠区", "registered": 0, "unsampled": 0},
        ]

    async def test_an_unknown_round_is_not_found_and_samplers_are_refused(self, scene):
        r = await scene.client.get("/rounds/9999/unsampled", headers=scene.tokens["admin"])
        assert (r.status_code, r.json()["type"]) == (404, "not-found")
        for path in ("unsampled", "unsampled.csv", "unsampled/districts"):
            r = await scene.client.get(
                f"/rounds/{scene.round_id}/{path}", headers=scene.tokens["P1"]
            )
            assert r.status_code == 403


class TestRecallSheetAddress:
    async def test_the_squad_sees_the_home_address_of_someone_without_a_phone(self, scene):
        body = await scene.ok(
            "/residents",
            {
                "id_type": "other",
                "id_number": "NOPHONE1",
                "name": "独居老人",
                "district": "D1",
                "address": "幸福路8号<2栋>301",
            },
        )
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0])
        assert (await scene.sample(tube, str(body["resident_code"]))).status_code == 201
        await scene.ship([tube], box="B1")
        await scene.upload_lis([f"A3,{tube},30,31,26"], "PL1")
        cases = await scene.client.get(
            f"/rounds/{scene.round_id}/retests", headers=scene.tokens["admin"]
        )
        case = cases.json()["items"][0]["case_id"]
        r = await scene.client.get(
            f"/rounds/{scene.round_id}/retests/{case}/recall.pdf", headers=scene.tokens["admin"]
        )
        extracted = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
        flat = extracted.replace("\n", "")  # the address wraps in its cell
        assert "独居老人" in flat and "幸福路8号<2栋>301" in flat
