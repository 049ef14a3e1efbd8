"""Registering residents: one at a time, from a census file, and what is stored."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from stdnum.cn import ric

from screening.privacy import InvalidIdNumber, mask_id_number, mask_name, normalize_id_number

VALID_ID = "11010519491231002X"  # the GB 11643 standard's own example


def person(id_number=VALID_ID, name="王小明", **extra):
    return {
        "id_type": "prc_id",
        "id_number": id_number,
        "name": name,
        "phone": "13812345678",
        "district": "D1",
        **extra,
    }


def census(
    *lines: str, encoding: str = "utf-8", header: str = "id_type,id_number,name,phone,district"
) -> dict:
    content = "\n".join([header, *lines]).encode(encoding)
    return {"file": ("census.csv", io.BytesIO(content), "text/csv")}


class TestRegisterOne:
    async def test_a_new_person_gets_a_code(self, scene):
        r = await scene.post("/residents", person())
        assert r.status_code == 201
        code = r.json()["resident_code"]
        assert len(code) == 14 and code.isalnum()

    async def test_the_same_person_again_gets_the_same_code(self, scene):
        first = await scene.post("/residents", person())
        again = await scene.post("/residents", person(id_number=VALID_ID.lower(), name="王小明"))
        assert again.status_code == 200
        assert again.json() == first.json()

    async def test_the_code_is_not_derived_from_the_id_number(self, scene, db_session):
        code = (await scene.post("/residents", person())).json()["resident_code"]
        await db_session.execute(text("DELETE FROM residents WHERE code = :c"), {"c": code})
        again = (await scene.post("/residents", person())).json()["resident_code"]
        assert again != code

    async def test_a_wrong_check_digit_is_refused_naming_the_field(self, scene):
        r = await scene.post("/residents", person(id_number=VALID_ID[:-1] + "1"))
        assert r.status_code == 422
        body = r.json()
        assert body["type"] == "invalid-id-number"
        assert body["errors"][0]["loc"] == ["body", "id_number"]

    async def test_a_missing_field_is_an_invalid_request_naming_it(self, scene):
        r = await scene.post(
            "/residents", {"id_type": "prc_id", "id_number": VALID_ID, "district": "D1"}
        )
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")
        assert ["body", "name"] in [e["loc"] for e in r.json()["errors"]]

    async def test_an_unknown_district_is_not_found(self, scene):
        r = await scene.post("/residents", person(district="NOPE"))
        assert (r.status_code, r.json()["type"]) == (404, "not-found")

    async def test_a_passport_number_needs_no_check_digit(self, scene):
        r = await scene.post(
            "/residents",
            {
                "id_type": "passport",
                "id_number": "E12345678",
                "nationality": "USA",
                "name": "John Smith",
                "district": "D1",
            },
        )
        assert r.status_code == 201

    async def test_a_lab_cannot_register_residents(self, scene):
        r = await scene.post("/residents", person(), who="L1")
        assert (r.status_code, r.json()["type"]) == (403, "forbidden")


class TestCensusImport:
    async def test_bad_lines_come_back_with_their_number_and_the_good_ones_are_stored(self, scene):
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files=census(
                f"prc_id,{VALID_ID},王小明,13812345678,D1",
                f"prc_id,{VALID_ID[:-1]}1,李四,,D1",
                "other,E7654321,Jane Roe,,D9",
                "prc_id,,无号,,D1",
                f"prc_id,{scene.ids[0]},{scene.names[0]},,D1",
                "other,E7654321,Jane Roe,,D1",
                "other,E7654321,Jane Roe,,D1",
            ),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["created"], body["existing"]) == (2, 2)
        assert [(x["line"], x["type"]) for x in body["rejected"]] == [
            (3, "invalid-id-number"),
            (4, "unknown-district"),
            (5, "invalid-id-number"),
        ]
        codes = {c["line"]: c["resident_code"] for c in body["codes"]}
        assert sorted(codes) == [2, 6, 7, 8]
        assert codes[6] == scene.codes[0]
        assert codes[7] == codes[8]

    async def test_a_gbk_encoded_file_with_crlf_reads(self, scene):
        content = census(f"prc_id,{VALID_ID},王小明,,D1", encoding="gbk")
        raw = content["file"][1].getvalue().replace(b"\n", b"\r\n")
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("c.csv", io.BytesIO(raw), "text/csv")},
        )
        assert r.json()["created"] == 1

    async def test_a_file_without_the_header_is_unreadable(self, scene):
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("c.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv")},
        )
        assert (r.status_code, r.json()["type"]) == (422, "unreadable-file")
        assert "line 1" in r.json()["detail"]

    async def test_a_re_import_creates_nobody(self, scene):
        files = census("other,E1001,A Person,,D1", "other,E1002,B Person,,D1")
        first = await scene.client.post(
            "/residents/import", headers=scene.tokens["admin"], files=files
        )
        files = census("other,E1001,A Person,,D1", "other,E1002,B Person,,D1")
        again = await scene.client.post(
            "/residents/import", headers=scene.tokens["admin"], files=files
        )
        assert (again.json()["created"], again.json()["existing"]) == (0, 2)
        assert again.json()["codes"] == first.json()["codes"]


class TestPersonalDataAtRest:
    async def test_no_id_number_name_or_phone_is_stored_in_clear(self, scene, db_session):
        await scene.post("/residents", person())
        rows = (await db_session.execute(text("SELECT residents::text FROM residents"))).scalars()
        dump = "\n".join(rows)
        for secret in (VALID_ID, "王小明", "13812345678", scene.ids[0], scene.names[0]):
            assert secret not in dump
            assert secret.encode().hex() not in dump

    async def test_a_resident_read_back_is_masked(self, scene):
        r = await scene.client.get(f"/residents/{scene.codes[0]}", headers=scene.tokens["P1"])
        body = r.json()
        assert body["id_masked"] == mask_id_number(scene.ids[0])
        assert body["phone_masked"] == "138****0000"
        assert scene.ids[0] not in r.text


class TestMasking:
    def test_names_keep_their_first_and_last_character(self):
        assert mask_name("张三明") == "张*明"
        assert mask_name("张三") == "张*"
        assert mask_name("欧阳娜娜") == "欧**娜"

    def test_id_numbers_keep_four_characters_each_end(self):
        assert mask_id_number("44010219800101123X") == "4401**********123X"


@st.composite
def prc_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["110101", "110105", "310101"]))
    born = draw(
        st.dates(
            min_value=__import__("datetime").date(1900, 1, 1),
            max_value=__import__("datetime").date(2024, 12, 31),
        )
    )
    seq = draw(st.integers(0, 999))
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


class TestPrcIdCheckDigit:
    @given(prc_ids())
    def test_every_well_formed_id_is_accepted(self, id_number):
        assert normalize_id_number("prc_id", id_number.lower()) == id_number

    @given(prc_ids(), st.integers(0, 17), st.integers(1, 10))
    def test_any_single_character_change_is_refused(self, id_number, position, shift):
        alphabet = "0123456789X"
        old = id_number[position]
        if position < 17 and old == "X":
            return
        new = alphabet[(alphabet.index(old) + shift) % 11]
        if position < 17 and new == "X":
            new = alphabet[(alphabet.index(new) + 1) % 11]
        changed = id_number[:position] + new + id_number[position + 1 :]
        if changed == id_number:
            return
        try:
            normalize_id_number("prc_id", changed)
        except InvalidIdNumber:
            return
        raise AssertionError(f"{changed} (from {id_number}) was accepted")


class TestBigCensusInAWorkerProcess:
    async def test_a_file_above_the_threshold_is_checked_in_another_process(self, app, scene):
        app.state.settings = app.state.settings.model_copy(update={"census_process_above_bytes": 0})
        lines = [f"other,W{i:06d},居民{i},,D1" for i in range(12_000)]
        lines[7_000] = "prc_id,123,坏号,,D1"
        r = await scene.client.post(
            "/residents/import", headers=scene.tokens["admin"], files=census(*lines)
        )
        body = r.json()
        assert (body["created"], len(body["codes"])) == (11_999, 11_999)
        assert [(x["line"], x["type"]) for x in body["rejected"]] == [(7_002, "invalid-id-number")]
        assert [c["line"] for c in body["codes"]] == [n for n in range(2, 12_002) if n != 7_002]

    async def test_a_dead_worker_process_leaves_the_import_to_a_thread(
        self, app, scene, monkeypatch
    ):
        from concurrent.futures import Executor, Future
        from concurrent.futures.process import BrokenProcessPool

        from screening.residents import census as census_module

        class DeadPool(Executor):
            shut = False

            def submit(self, fn, /, *args, **kwargs):
                future: Future = Future()
                future.set_exception(BrokenProcessPool("killed"))
                return future

            def shutdown(self, wait=True, *, cancel_futures=False):
                DeadPool.shut = True

        dead = DeadPool()
        monkeypatch.setattr(census_module, "_pool", dead)
        app.state.settings = app.state.settings.model_copy(update={"census_process_above_bytes": 0})
        lines = [f"other,K{i:06d},居民{i},,D1" for i in range(4_500)]
        r = await scene.client.post(
            "/residents/import", headers=scene.tokens["admin"], files=census(*lines)
        )
        assert (r.status_code, r.json()["created"]) == (200, 4_500)
        assert DeadPool.shut and census_module._pool is None
