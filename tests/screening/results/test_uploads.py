"""Lab uploads through POST /labs/{lab}/results, in lis-csv (the canonical format)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import text

from pooling.barcodes import parse_barcode

HEADER = "plate,well,sample,role,ORF1ab,N,IC"
CONTROLS = ["{plate},A1,NTC,ntc,,,", "{plate},A2,PC,pc,28.1,29.3,27.0"]


async def received_tubes(scene, n, people_per_tube=2, lab="L1", start=0):
    """n sealed tubes of P1, boxed, dispatched and received by ``lab``."""
    tubes = scene.barcodes["P1"][start : start + n]
    for k, tube in enumerate(tubes):
        first = (start + k) * people_per_tube
        await scene.fill(tube, range(first, first + people_per_tube))
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
    box = f"BOX-{start}"
    await scene.ok("/boxes", {"barcode": box, "lab": lab, "tubes": tubes}, "P1")
    await scene.ok(f"/boxes/{box}/receive", {}, lab)
    return tubes


def lis(rows, plate="PL1", controls=True, header=HEADER):
    lines = [header]
    if controls:
        lines += [c.format(plate=plate) for c in CONTROLS]
    lines += rows
    return "\n".join(lines) + "\n"


async def upload(scene, content, who="L1", lab="L1", name="run.csv", **form):
    data = content.encode() if isinstance(content, str) else content
    return await scene.client.post(
        f"/labs/{lab}/results",
        headers=scene.tokens[who],
        data=form,
        files={"file": (name, io.BytesIO(data), "text/csv")},
    )


async def status_of(scene, person):
    r = await scene.client.post(
        "/results/query", json={"id_number": scene.ids[person], "name": scene.names[person]}
    )
    return r.json()["items"][0]["status"]


class TestCalls:
    async def test_a_plate_of_each_call_answers_per_tube_and_per_resident(self, scene):
        t = await received_tubes(scene, 4)
        r = await upload(
            scene,
            lis(
                [
                    f"PL1,A3,{t[0]},sample,,,26.0",  # negative
                    f"PL1,A4,{t[1]},sample,30.2,31.0,26.0",  # positive
                    f"PL1,A5,{t[2]},sample,,35.5,26.0",  # one target: suspicious
                    f"PL1,A6,{t[3]},sample,,,",  # nothing, IC fails: invalid
                ]
            ),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["format"] == "lis-csv"
        assert (body["rows"], body["accepted"], body["duplicate"], body["rejected"]) == (
            6,
            6,
            0,
            [],
        )
        assert body["plates"] == [
            {
                "plate": "PL1",
                "controls": "ok",
                "wells": 6,
                "calls": {"negative": 1, "positive": 1, "suspicious": 1, "invalid": 1, "rerun": 0},
            }
        ]
        assert body["tubes"] == {
            "negative": 1,
            "positive": 1,
            "suspicious": 1,
            "invalid": 1,
            "rerun": 0,
        }
        assert [await status_of(scene, p) for p in (0, 2, 4, 6)] == [
            "negative",
            "retest",
            "retest",
            "invalid",
        ]
        tube = (
            await scene.client.get(
                f"/rounds/{scene.round_id}/tubes/{t[1]}", headers=scene.tokens["admin"]
            )
        ).json()
        assert tube["state"] == "resulted"
        assert tube["result"]["call"] == "positive"
        assert tube["result"]["ct"] == {"ORF1ab": 30.2, "N": 31.0, "E": None, "IC": 26.0}
        assert (tube["result"]["plate"], tube["result"]["well"]) == ("PL1", "A4")

    async def test_a_negative_control_that_amplifies_puts_the_plate_to_rerun(self, scene):
        t = await received_tubes(scene, 2)
        content = "\n".join(
            [
                HEADER,
                "PL1,A1,NTC,ntc,36.0,,",
                "PL1,A2,PC,pc,28,29,27",
                f"PL1,A3,{t[0]},sample,25,26,27",
                f"PL1,A4,{t[1]},sample,,,27",
            ]
        )
        body = (await upload(scene, content)).json()
        assert body["plates"][0]["controls"] == "failed"
        assert (body["tubes"]["invalid"], body["tubes"]["rerun"]) == (0, 2)
        assert await status_of(scene, 0) == "pending"

    async def test_each_plate_says_its_own_calls(self, scene):
        t = await received_tubes(scene, 3)
        content = "\n".join(
            [
                HEADER,
                "PA,A1,NTC,ntc,,,",
                "PA,A2,PC,pc,28,29,27",
                f"PA,A3,{t[0]},sample,30,31,27",
                f"PA,A4,{t[1]},sample,,,27",
                "PB,A1,NTC,ntc,33,,",  # plate B's negative control amplifies
                "PB,A2,PC,pc,28,29,27",
                f"PB,A3,{t[2]},sample,,,27",
            ]
        )
        body = (await upload(scene, content)).json()
        assert [(p["plate"], p["controls"], p["calls"]) for p in body["plates"]] == [
            ("PA", "ok", {"negative": 1, "positive": 1, "suspicious": 0, "invalid": 0, "rerun": 0}),
            (
                "PB",
                "failed",
                {"negative": 0, "positive": 0, "suspicious": 0, "invalid": 0, "rerun": 1},
            ),
        ]

    async def test_a_positive_control_that_does_not_amplify_fails_the_plate(self, scene):
        t = await received_tubes(scene, 1)
        content = "\n".join(
            [HEADER, "PL1,A1,NTC,ntc,,,", "PL1,A2,PC,pc,28,,27", f"PL1,A3,{t[0]},sample,,,27"]
        )
        body = (await upload(scene, content)).json()
        assert body["plates"][0]["controls"] == "failed"
        assert body["tubes"]["rerun"] == 1

    async def test_a_plate_without_control_wells_fails(self, scene):
        t = await received_tubes(scene, 1)
        body = (await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"], controls=False))).json()
        assert body["plates"][0]["controls"] == "failed"

    async def test_the_grey_zone_reads_suspicious(self, scene, db_session):
        await db_session.execute(
            text("UPDATE labs SET kit = kit || '{\"grey_ct_max\": 42}' WHERE code = 'L1'")
        )
        t = await received_tubes(scene, 1)
        body = (await upload(scene, lis([f"PL1,A3,{t[0]},sample,41.0,,27"]))).json()
        assert body["tubes"]["suspicious"] == 1


class TestRejectedRows:
    async def test_each_bad_row_comes_back_with_its_line_and_reason(self, scene):
        t = await received_tubes(scene, 3)
        other = scene.barcodes["P1"][10]
        await scene.fill(other, range(20, 22))  # sampled, never received
        content = lis(
            [
                f"PL1,A3,{t[0]},sample,,,27",  # line 4: fine
                "PL1,A4,00000000009993,sample,,,27",  # 5: unknown tube
                f"PL1,A5,{other},sample,,,27",  # 6: not received by this lab
                f"PL1,Q1,{t[1]},sample,,,27",  # 7: well outside the plate
                f"PL1,A7,{t[2]},sample,abc,,27",  # 8: Ct not a number
                f"PL1,A8,{t[2]},sample,55,,27",  # 9: Ct out of range
                f"PL1,A3,{t[1]},sample,,,27",  # 10: well A3 already holds t[0]
                f",A9,{t[2]},sample,,,27",  # 11: no plate
            ]
        )
        body = (await upload(scene, content)).json()
        assert [(x["line"], x["type"]) for x in body["rejected"]] == [
            (5, "unknown-tube"),
            (6, "tube-not-received"),
            (7, "bad-well"),
            (8, "bad-ct"),
            (9, "bad-ct"),
            (10, "well-conflict"),
            (11, "no-plate"),
        ]
        assert all(x["detail"] for x in body["rejected"])
        assert "abc" in body["rejected"][3]["detail"] and "ORF1ab" in body["rejected"][3]["detail"]
        assert (body["rows"], body["accepted"], body["rejected_total"]) == (10, 3, 7)

    async def test_the_plate_field_names_the_plate_of_a_file_without_one(self, scene):
        t = await received_tubes(scene, 1)
        content = "\n".join(
            [HEADER, ",A1,NTC,ntc,,,", ",A2,PC,pc,28,29,27", f",A3,{t[0]},sample,,,27"]
        )
        body = (await upload(scene, content, plate="PLATE-9")).json()
        assert body["plates"] == [
            {
                "plate": "PLATE-9",
                "controls": "ok",
                "wells": 3,
                "calls": {"negative": 1, "positive": 0, "suspicious": 0, "invalid": 0, "rerun": 0},
            }
        ]

    async def test_a_row_with_extra_cells_is_read_row_by_row(self, scene):
        t = await received_tubes(scene, 2)
        content = lis([f"PL1,A3,{t[0]},sample,,,27,surplus,cells", f"PL1,A4,{t[1]},sample,,,27"])
        body = (await upload(scene, content)).json()
        assert body["tubes"]["negative"] == 2

    async def test_a_gbk_file_with_crlf_and_extra_columns_reads(self, scene):
        t = await received_tubes(scene, 1)
        content = lis([f"PL1,A3,{t[0]},sample,,,27,备注"], header=HEADER + ",备注")
        content = content.replace("NTC,ntc,,,", "NTC,ntc,,,,").replace("27.0\n", "27.0,\n")
        raw = content.replace("\n", "\r\n").encode("gbk")
        body = (await upload(scene, raw)).json()
        assert body["tubes"]["negative"] == 1, body


class TestSameFileTwice:
    async def test_the_same_bytes_again_change_nothing_and_answer_alike(self, scene, db_session):
        t = await received_tubes(scene, 2)
        content = lis([f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,30,31,27"])
        first = (await upload(scene, content)).json()
        again = (await upload(scene, content)).json()
        assert again == {**first, "already_uploaded": True}
        assert again["received_at"] == first["received_at"] is not None
        counts = (
            await db_session.execute(
                text("SELECT count(*), count(DISTINCT upload_id) FROM results")
            )
        ).one()
        assert tuple(counts) == (2, 1)
        later = await scene.client.get(
            f"/labs/L1/uploads/{first['upload_id']}", headers=scene.tokens["L1"]
        )
        assert later.json() == first

    async def test_rows_already_held_count_as_duplicates(self, scene):
        t = await received_tubes(scene, 2)
        rows = [f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,30,31,27"]
        await upload(scene, lis(rows))
        reexport = lis(rows).replace(HEADER, "plate,well,sample,role,ORF1ab,N,IC,exported")
        reexport = reexport.replace(",27\n", ",27,\n").replace("27.0\n", "27.0,\n")
        reexport = reexport.replace("ntc,,,\n", "ntc,,,,\n")
        body = (await upload(scene, reexport)).json()
        assert (body["accepted"], body["duplicate"]) == (2, 2)
        assert body["tubes"] == {
            "negative": 0,
            "positive": 0,
            "suspicious": 0,
            "invalid": 0,
            "rerun": 0,
        }

    async def test_a_later_result_is_a_new_version_and_the_latest_counts(self, scene, db_session):
        t = await received_tubes(scene, 1)
        await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,"]))
        assert await status_of(scene, 0) == "invalid"
        await upload(scene, lis([f"PL2,B1,{t[0]},sample,,,27"], plate="PL2"))
        assert await status_of(scene, 0) == "negative"
        versions = (
            await db_session.execute(text("SELECT version, call FROM results ORDER BY version"))
        ).all()
        assert [tuple(v) for v in versions] == [(1, "invalid"), (2, "negative")]

    async def test_two_uploads_of_one_file_at_once_store_it_once(
        self, committed_client, engine, make_scene
    ):
        scene = await make_scene(committed_client).build(residents=4)
        t = await received_tubes(scene, 2)
        content = lis([f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,,,27"])
        answers = await asyncio.gather(*(upload(scene, content) for _ in range(4)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.json()["upload_id"] for a in answers}) == 1
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM results")) == 2


class TestWhoAndWhat:
    async def test_a_lab_uploads_for_itself_only(self, scene):
        t = await received_tubes(scene, 1)
        r = await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"]), who="L2")
        assert (r.status_code, r.json()["type"]) == (403, "forbidden")
        r = await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"]), who="P1")
        assert r.status_code == 403

    async def test_tubes_received_by_another_lab_are_refused(self, scene):
        t = await received_tubes(scene, 1, lab="L2")
        body = (await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"]))).json()
        assert body["rejected"][0]["type"] == "tube-not-received"

    async def test_a_file_that_cannot_be_read_stores_nothing(self, scene, db_session):
        for junk in (
            b"\x00\x01\x02garbage" * 100,
            b"",
            HEADER.encode() + b"\n",
            b"just,some,words\n1,2,3\n",
        ):
            r = await upload(scene, junk, name="junk.bin")
            assert (r.status_code, r.json()["type"]) == (422, "unreadable-file"), junk[:20]
        assert await db_session.scalar(text("SELECT count(*) FROM uploads")) == 0

    async def test_an_unknown_format_name_is_an_invalid_request(self, scene):
        r = await upload(scene, "x", format="excel")
        assert (r.status_code, r.json()["type"]) == (422, "invalid-request")


FIXTURES = Path(__file__).parents[2] / "lab_io" / "fixtures"


def instrument_file(name, tubes):
    data = (FIXTURES / name).read_bytes()
    for k, tube in enumerate(tubes):
        data = data.replace(f"{{t{k}}}".encode(), tube.encode())
    return data


class TestInstrumentFormats:
    """The golden instrument fixtures (tests/lab_io/fixtures), uploaded with no format."""

    async def test_a_quantstudio_7500_export_is_detected_called_and_stored(self, scene):
        t = await received_tubes(scene, 3)
        r = await upload(scene, instrument_file("quantstudio_7500.txt", t), name="QS.txt")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["format"] == "quantstudio"
        assert (body["rows"], body["accepted"], body["rejected"]) == (12, 12, [])
        assert body["plates"] == [
            {
                "plate": "QS-0405-A",
                "controls": "ok",
                "wells": 4,
                "calls": {"negative": 1, "positive": 1, "suspicious": 0, "invalid": 0, "rerun": 0},
            }
        ]
        assert body["tubes"] == {
            "negative": 1,
            "positive": 1,
            "suspicious": 0,
            "invalid": 0,
            "rerun": 0,
        }
        # A5 is omitted in the file: its tube has no result
        assert [await status_of(scene, p) for p in (0, 2, 4)] == ["negative", "retest", "pending"]

    async def test_a_design_and_analysis_export_reads_a_384_well_plate(self, scene):
        t = await received_tubes(scene, 1)
        body = (await upload(scene, instrument_file("quantstudio_design_analysis.csv", t))).json()
        assert body["format"] == "quantstudio"
        assert body["plates"] == [
            {
                "plate": "QSDA-0001",
                "controls": "ok",
                "wells": 3,
                "calls": {"negative": 1, "positive": 0, "suspicious": 0, "invalid": 0, "rerun": 0},
            }
        ]
        assert body["tubes"]["negative"] == 1

    async def test_a_cfx_file_takes_its_plate_from_its_name(self, scene, db_session):
        t = await received_tubes(scene, 2)
        name = "CFX-PL-7_2022-04-05 Quantification Cq Results.csv"
        body = (await upload(scene, instrument_file("biorad_cfx.csv", t), name=name)).json()
        assert body["format"] == "biorad-cfx"
        assert body["plates"] == [
            {
                "plate": "CFX-PL-7",
                "controls": "ok",
                "wells": 4,
                "calls": {"negative": 1, "positive": 0, "suspicious": 1, "invalid": 0, "rerun": 0},
            }
        ]
        # A4: N only (VIC/HEX through the kit's dyes) -> suspicious
        assert body["tubes"] == {
            "negative": 1,
            "positive": 0,
            "suspicious": 1,
            "invalid": 0,
            "rerun": 0,
        }
        stored = await db_session.scalar(
            text("SELECT ct FROM results WHERE tube_serial = :t"), {"t": parse_barcode(t[1])}
        )
        assert stored["N"] == 36.8

    async def test_a_cfx_file_takes_the_plate_field_before_its_name(self, scene):
        t = await received_tubes(scene, 2)
        data = instrument_file("biorad_cfx.csv", t)
        body = (
            await upload(scene, data, name="x_y Quantification Cq Results.csv", plate="FIELD-1")
        ).json()
        assert body["plates"][0]["plate"] == "FIELD-1"

    async def test_a_cfx_file_without_any_plate_rejects_its_rows(self, scene, db_session):
        t = await received_tubes(scene, 2)
        data = instrument_file("biorad_cfx.csv", t)
        body = (await upload(scene, data, name="run.csv", format="biorad-cfx")).json()
        assert body["accepted"] == 0
        assert {x["type"] for x in body["rejected"]} == {"no-plate"}
        assert body["rejected"][0]["line"] == 2
        assert await db_session.scalar(text("SELECT count(*) FROM results")) == 0

    async def test_a_slan_xlsx_is_detected_and_read(self, scene):
        t = await received_tubes(scene, 1)
        text_rows = instrument_file("slan_96p.csv", t).decode("gbk").splitlines()
        book = Workbook()
        for row in csv.reader(text_rows):
            book.active.append(row)
        buffer = io.BytesIO()
        book.save(buffer)
        body = (await upload(scene, buffer.getvalue(), name="slan.xlsx")).json()
        assert body["format"] == "slan-96p"
        assert body["plates"] == [
            {
                "plate": "SLAN-PLATE-7",
                "controls": "ok",
                "wells": 3,
                "calls": {"negative": 1, "positive": 0, "suspicious": 0, "invalid": 0, "rerun": 0},
            }
        ]
        assert body["tubes"]["negative"] == 1

    async def test_a_gbk_slan_csv_uploaded_twice_changes_nothing(self, scene, db_session):
        t = await received_tubes(scene, 1)
        data = instrument_file("slan_96p.csv", t)
        first = (await upload(scene, data)).json()
        again = (await upload(scene, data)).json()
        assert again == {**first, "already_uploaded": True}
        assert await db_session.scalar(text("SELECT count(*) FROM results")) == 1
