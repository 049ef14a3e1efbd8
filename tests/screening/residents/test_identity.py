"""Identity that fits real people (API.md v1.1 "Identity"): the ID corpus python-stdnum's
county look-up refused, every ID type, names as people write them, conflicts, and no
ID number ever a 5xx (registration, the query, the census)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from stdnum.cn import ric

from screening.app import create_app
from screening.privacy import load_vault
from screening.residents.identity import (
    InvalidIdNumber,
    check_prc_id,
    name_key,
    normalize_id_number,
)
from screening.residents.ratelimit import LimitsFailureLimiter
from screening.residents.service import backfill_passport_numbers


def prc(region: str, born: str, seq: str = "123") -> str:
    """A well-formed ID number: region, birth date (YYYYMMDD), sequence, check digit."""
    body = region + born + seq
    return body + ric.calc_check_digit(body + "0")


def wrong_check(number: str) -> str:
    return number[:-1] + ("0" if number[-1] != "0" else "1")


# 9, province 31, country 840 (USA), birth date, sequence, GB 11643 check digit
FOREIGN_18 = prc("931840", "19800101")


def person(id_number: str, name: str = "王小明", id_type: str = "prc_id", **extra: object):
    return {"id_type": id_type, "id_number": id_number, "name": name, "district": "D1", **extra}


# numbers python-stdnum refuses (county not existing in the birth year) or crashes on
REAL_PEOPLE = [
    pytest.param(prc("310115", "19800101"), id="Pudong, born before 1993"),
    pytest.param(prc("440106", "19700615"), id="Tianhe, born before 1985"),
    pytest.param(prc("440117", "20000101"), id="Conghua district, born before 2014"),
    pytest.param(prc("830000", "19900101"), id="Taiwan residence permit"),
    pytest.param(prc("810000", "19851231"), id="Hong Kong residence permit"),
    pytest.param(prc("820000", "19851231"), id="Macau residence permit"),
    pytest.param("110199200501011234", id="stdnum KeyError county"),
]


class TestPrcIdRules:
    @pytest.mark.parametrize("id_number", REAL_PEOPLE)
    def test_stdnum_refuses_or_crashes_on_these(self, id_number):
        try:
            accepted = ric.is_valid(id_number)
        except KeyError:
            accepted = False
        assert not accepted

    @pytest.mark.parametrize("id_number", REAL_PEOPLE)
    async def test_real_people_register(self, scene, id_number):
        r = await scene.post("/residents", person(id_number))
        assert r.status_code == 201, r.text
        assert r.json()["name_masked"] == "王*明"

    @pytest.mark.parametrize("id_number", REAL_PEOPLE)
    async def test_real_people_query_their_results(self, scene, id_number):
        await scene.post("/residents", person(id_number))
        r = await scene.client.post(
            "/results/query", json={"id_number": id_number, "name": "王小明"}
        )
        assert r.status_code == 200, r.text

    async def test_real_people_import_from_a_census(self, scene):
        lines = [f"prc_id,{p.values[0]},居民{i},,D1" for i, p in enumerate(REAL_PEOPLE)]
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("c.csv", census(*lines))},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["rejected"]) == (len(REAL_PEOPLE), [])

    @pytest.mark.parametrize(
        ("id_number", "why"),
        [
            (prc("990000", "19800101"), "省级行政区代码"),
            (prc("000000", "19800101"), "省级行政区代码"),
            (prc("310115", "19800230"), "出生日期不存在"),
            # two days ahead: "today" is where it is latest on Earth (UTC+14), and the
            # parameters are made when the tests are collected, maybe before midnight
            (prc("310115", (date.today() + timedelta(days=2)).strftime("%Y%m%d")), "不合理"),
            (wrong_check(prc("310115", "19800101")), "校验位"),
            ("31011519800101", "18位"),
            ("3101151980010100A1", "前17位"),
        ],
        ids=["no province 99", "no province 00", "30 February", "born in 2 days", "check digit",
             "short", "letter inside"],
    )  # fmt: skip
    async def test_a_wrong_number_is_refused_in_chinese(self, scene, id_number, why):
        r = await scene.post("/residents", person(id_number))
        assert (r.status_code, r.json()["type"]) == (422, "invalid-id-number")
        assert why in r.json()["detail"]
        assert r.json()["errors"][0]["loc"] == ["body", "id_number"]

    async def test_a_baby_born_today_in_shanghai_registers_on_a_utc_server(self, scene):
        """At 00:30 in Shanghai it is still yesterday in UTC: the birth date is not in
        the future for the service, whatever zone its clock keeps."""
        shanghai = datetime.now(UTC) + timedelta(hours=8)
        r = await scene.post("/residents", person(prc("310115", f"{shanghai:%Y%m%d}")))
        assert r.status_code == 201, r.text

    def test_full_width_digits_from_a_chinese_keyboard_read_as_digits(self):
        number = prc("310115", "19800101")
        wide = "".join(chr(ord(c) + 0xFEE0) for c in number)
        assert normalize_id_number("prc_id", wide) == number

    def test_other_scripts_digits_are_not_digits(self):
        number = prc("310115", "19800101")
        with pytest.raises(InvalidIdNumber):
            check_prc_id("٣" + number[1:])


class TestOtherIdTypes:
    @pytest.mark.parametrize(
        ("id_type", "number", "extra"),
        [
            ("hkmo_permit", "H12345678", {}),
            ("hkmo_permit", "M1234567890", {}),
            ("tw_permit", "12345678", {}),
            ("foreign_permanent", "USA110080123456", {}),
            ("foreign_permanent", FOREIGN_18, {}),
            ("passport", "E12345678", {"nationality": "USA"}),
            ("passport", "g1234567", {"nationality": "gbr"}),
            ("other", "12345ABC", {}),
        ],
        ids=["HK permit", "Macau permit 10", "Taiwan permit", "foreign 15", "foreign 18",
             "passport", "passport lower case", "other"],
    )  # fmt: skip
    async def test_each_type_registers(self, scene, id_type, number, extra):
        r = await scene.post("/residents", person(number, "John Smith", id_type, **extra))
        assert r.status_code == 201, r.text

    @pytest.mark.parametrize(
        ("id_type", "number", "extra", "field", "words"),
        [
            ("hkmo_permit", "X12345678", {}, "id_number", "H或M开头"),
            ("hkmo_permit", "H123456789", {}, "id_number", "8位或10位"),
            ("tw_permit", "1234567", {}, "id_number", "8位数字"),
            ("foreign_permanent", "US1100801234567", {}, "id_number", "15位"),
            ("foreign_permanent", wrong_check(FOREIGN_18), {}, "id_number", "校验位"),
            ("passport", "E12345678", {}, "nationality", "国籍"),
            ("passport", "E12345678", {"nationality": "XXX"}, "nationality", "国家代码"),
            ("passport", "E1", {"nationality": "USA"}, "id_number", "护照号码"),
            ("other", "甲乙丙", {}, "id_number", "字母或数字"),
        ],
        ids=["HK letter", "HK 9 digits", "TW 7", "foreign 15 shape", "foreign 18 check",
             "passport without nationality", "unknown country", "short passport", "other"],
    )  # fmt: skip
    async def test_each_type_refuses_in_chinese_naming_the_field(
        self, scene, id_type, number, extra, field, words
    ):
        r = await scene.post("/residents", person(number, "John Smith", id_type, **extra))
        assert (r.status_code, r.json()["type"]) == (422, "invalid-id-number"), r.text
        assert words in r.json()["detail"]
        assert r.json()["errors"][0]["loc"] == ["body", field]

    async def test_a_passport_is_the_pair_of_nationality_and_number(self, scene):
        us = await scene.post("/residents", person("E12345678", "John Smith", "passport",
                                                   nationality="USA"))  # fmt: skip
        gb = await scene.post("/residents", person("E12345678", "Jane Roe", "passport",
                                                   nationality="GBR"))  # fmt: skip
        assert (us.status_code, gb.status_code) == (201, 201)
        assert us.json()["resident_code"] != gb.json()["resident_code"]
        mine = await scene.client.post(
            "/results/query",
            json={"id_number": "E12345678", "name": "Jane Roe", "nationality": "GBR"},
        )
        anywhere = await scene.client.post(
            "/results/query", json={"id_number": "e12345678", "name": "jane roe"}
        )
        wrong_country = await scene.client.post(
            "/results/query",
            json={"id_number": "E12345678", "name": "Jane Roe", "nationality": "USA"},
        )
        assert (mine.status_code, anywhere.status_code, wrong_country.status_code) == (
            200,
            200,
            404,
        )

    async def test_a_query_without_nationality_finds_every_passport_of_that_number(self, scene):
        """One probe of the number's own hash (migration 0012) stands for all 249
        countries: a census passport (Kenya) and a registered one (Japan) are both
        found, each only under its holder's name; a PRC number is not a passport."""
        imported = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("c.csv", census("passport,X7654321,Amina Otieno,,D1,KEN",
                                            header="id_type,id_number,name,phone,district,"
                                            "nationality"))},
        )  # fmt: skip
        assert imported.status_code == 200 and not imported.json()["rejected"], imported.text
        registered = await scene.post(
            "/residents", person("X7654321", "Sato Yuki", "passport", nationality="JPN")
        )
        assert registered.status_code == 201, registered.text

        async def ask(name: str, **extra: str) -> int:
            body = {"id_number": "x 7654321", "name": name, **extra}
            return (await scene.client.post("/results/query", json=body)).status_code

        assert await ask("AMINA OTIENO") == 200
        assert await ask("sato yuki") == 200
        assert await ask("Sato Yuki", nationality="KEN") == 404  # Kenya's is Amina's
        assert await ask("Someone Else") == 404

    async def test_passports_stored_before_the_number_hash_are_found_after_start(
        self, committed_client, make_scene, engine, settings
    ):
        """Rows of a database migrated from before 0012 have no number hash: the query
        without a nationality misses them until the service, starting, fills it in."""
        scene = await make_scene(committed_client).build(residents=0)
        vault = load_vault(settings)
        for number, name in (("E1111111", "Ann Lee"), ("12345", "Bo Li")):
            r = await scene.post("/residents", person(number, name, "passport", nationality="USA"))
            assert r.status_code == 201, r.text
        async with engine.begin() as conn:  # as 0012 left them; Bo Li's from before v1.1
            await conn.execute(text("UPDATE residents SET passport_number_hash = NULL"))
            await conn.execute(
                text(
                    "UPDATE residents SET nationality = NULL, id_hash = :plain"
                    " WHERE id_hash = :canonical"
                ),
                {
                    "plain": vault.id_hash("passport", "12345"),
                    "canonical": vault.id_hash("passport", "USA:12345"),
                },
            )

        async def ask(number: str, name: str) -> int:
            body = {"id_number": number, "name": name}
            return (await committed_client.post("/results/query", json=body)).status_code

        assert await ask("E1111111", "Ann Lee") == 404
        assert await backfill_passport_numbers(engine, vault) == 2
        assert (await ask("E1111111", "Ann Lee"), await ask("12345", "Bo Li")) == (200, 200)
        assert await backfill_passport_numbers(engine, vault) == 0
        async with engine.connect() as conn:
            hashes = set(
                (await conn.scalars(text("SELECT passport_number_hash FROM residents"))).all()
            )
        assert hashes == {
            vault.passport_number_hash("E1111111"),
            vault.passport_number_hash("12345"),
        }

    async def test_the_nationality_is_kept_and_the_number_shown_masked(self, scene):
        code = (
            await scene.post(
                "/residents", person("E12345678", "John Smith", "passport", nationality="USA")
            )
        ).json()["resident_code"]
        r = await scene.client.get(f"/residents/{code}", headers=scene.tokens["P1"])
        assert (r.json()["nationality"], r.json()["id_masked"]) == ("USA", "E*******8")


class TestNames:
    @pytest.mark.parametrize(
        ("first", "again"),
        [
            ("阿卜杜·热合曼", "阿卜杜•热合曼"),
            ("阿卜杜·热合曼", "阿卜杜・热合曼"),
            ("阿卜杜·热合曼", "阿卜杜‧热合曼"),
            ("阿卜杜·热合曼", "阿卜杜.热合曼"),
            ("阿卜杜·热合曼", "阿卜杜．热合曼"),
            ("John Smith", "JOHN SMITH"),
            ("John Smith", "johnsmith"),
            ("王 小明", "王小明"),
            ("王小明", "王小明"),  # full-width: NFKC
        ],
    )
    async def test_spellings_of_one_name_are_one_person(self, scene, first, again):
        number = prc("310115", "19800101")
        a = await scene.post("/residents", person(number, first))
        b = await scene.post("/residents", person(number, again))
        assert (a.status_code, b.status_code) == (201, 200), b.text
        assert a.json()["resident_code"] == b.json()["resident_code"]
        q = await scene.client.post("/results/query", json={"id_number": number, "name": again})
        assert q.status_code == 200

    def test_the_name_key_keeps_chinese_characters_apart(self):
        assert name_key("王小明") != name_key("王小鸣")


class TestConflicts:
    async def test_a_known_number_under_another_name_is_a_conflict(self, scene):
        r = await scene.post("/residents", person(scene.ids[0], "李四"))
        assert (r.status_code, r.json()["type"]) == (409, "identity-conflict")
        assert "另一个姓名" in r.json()["detail"]

    async def test_a_census_line_with_another_name_is_rejected_not_merged(self, scene):
        number = prc("310115", "19800101")
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={
                "file": (
                    "c.csv",
                    census(
                        f"prc_id,{scene.ids[0]},李四,,D1",
                        f"prc_id,{number},王五,,D1",
                        f"prc_id,{number},赵六,,D1",
                        f"prc_id,{number},王 五,,D1",
                    ),
                )
            },
        )
        body = r.json()
        assert [(x["line"], x["type"]) for x in body["rejected"]] == [
            (2, "identity-conflict"),
            (4, "identity-conflict"),
        ]
        codes = {c["line"]: c["resident_code"] for c in body["codes"]}
        assert sorted(codes) == [3, 5] and codes[3] == codes[5]
        assert scene.codes[0] not in codes.values()


def census(*lines: str, header: str = "id_type,id_number,name,phone,district") -> io.BytesIO:
    return io.BytesIO("\n".join([header, *lines]).encode())


class TestCommunityAndAddress:
    async def test_they_are_kept_the_address_encrypted_and_masked(self, scene, db_session):
        number = prc("310115", "19800101")
        r = await scene.post(
            "/residents",
            person(number, community="幸福里社区", address="浦东新区世纪大道100号3栋502室"),
        )
        code = r.json()["resident_code"]
        read = (await scene.client.get(f"/residents/{code}", headers=scene.tokens["P1"])).json()
        assert read["community"] == "幸福里社区"
        assert read["address_masked"].startswith("浦东新区世纪") and "502" not in str(read)
        dump = (await db_session.execute(text("SELECT residents::text FROM residents"))).scalars()
        assert "世纪大道" not in "\n".join(dump)

    async def test_an_overlong_community_is_refused_naming_it(self, scene):
        r = await scene.post("/residents", person(prc("310115", "19800101"), community="社" * 65))
        assert r.status_code == 422
        assert ["body", "community"] in [e["loc"] for e in r.json()["errors"]]

    async def test_a_census_may_carry_them(self, scene):
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={
                "file": (
                    "c.csv",
                    census(
                        "passport,E1234567,Jane Roe,,D1,GBR,幸福里社区,世纪大道100号",
                        header="id_type,id_number,name,phone,district,nationality,community,address",
                    ),
                )
            },
        )
        [line] = r.json()["codes"]
        read = await scene.client.get(
            f"/residents/{line['resident_code']}", headers=scene.tokens["P1"]
        )
        assert (read.json()["nationality"], read.json()["community"]) == ("GBR", "幸福里社区")


class TestWalkIn:
    async def test_a_sampler_registers_into_the_points_district(self, scene, db_session):
        body = person(prc("310115", "19800101"))
        del body["district"]
        r = await scene.post("/residents", body, who="Q1")
        assert r.status_code == 201, r.text
        district = await db_session.scalar(
            text(
                "SELECT d.code FROM residents r JOIN districts d ON d.id = r.district_id"
                " WHERE r.code = :c"
            ),
            {"c": r.json()["resident_code"]},
        )
        assert district == "D2"

    async def test_an_admin_must_name_the_district(self, scene):
        body = person(prc("310115", "19800101"))
        del body["district"]
        r = await scene.post("/residents", body)
        assert r.status_code == 422
        assert ["body", "district"] in [e["loc"] for e in r.json()["errors"]]


EIGHTEEN = st.text(
    alphabet=st.one_of(
        st.sampled_from("0123456789X"), st.characters(codec="utf-8", exclude_characters="\x00")
    ),
    min_size=18,
    max_size=18,
)
NO_DEADLINE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class TestNoIdNumberIsA5xx:
    @NO_DEADLINE
    @given(number=EIGHTEEN, id_type=st.sampled_from(["prc_id", "foreign_permanent", "other"]))
    async def test_registration(self, scene, number, id_type):
        r = await scene.post("/residents", person(number, id_type=id_type))
        assert r.status_code < 500, r.text

    @NO_DEADLINE
    @given(number=EIGHTEEN)
    async def test_the_query(self, app, client, number):
        app.state.query_limiter = LimitsFailureLimiter(
            "async+memory://", 10
        )  # every example reaches the look-up
        r = await client.post("/results/query", json={"id_number": number, "name": "王小明"})
        assert r.status_code in (404, 422), r.text

    @NO_DEADLINE
    @given(numbers=st.lists(EIGHTEEN, min_size=1, max_size=5))
    async def test_the_census(self, scene, numbers):
        lines = ["prc_id," + n.replace('"', "").replace("\r", "").replace("\n", "") + ",王小明,,D1"
                 for n in numbers]  # fmt: skip
        r = await scene.client.post(
            "/residents/import",
            headers=scene.tokens["admin"],
            files={"file": ("c.csv", census(*lines))},
        )
        assert r.status_code < 500, r.text


async def test_a_process_starting_without_its_database_still_starts(settings, caplog):
    """The passport back-fill runs as a process starts; with the database out of reach
    the process starts anyway (as it always did) and tries again in the background."""
    unreachable = create_async_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_args={"timeout": 1}
    )
    app = create_app(settings, engine=unreachable)
    try:
        async with app.router.lifespan_context(app):
            pass
    finally:
        await unreachable.dispose()
    assert "passport numbers not hashed yet" in caplog.text
