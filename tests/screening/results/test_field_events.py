"""Everyday lab events (API.md v1.1, "Lab in the field"): results before the box scan
are held and applied at receipt; failed plates wait for their re-run (listed, decided
by the next upload of the plate, or given up); the same bytes with other form fields
are a new upload; the CFX plate comes from the file's own run information; uploads
say who sent them and when, and a file sent again says it was already uploaded."""

from __future__ import annotations

from tests.screening.results.test_uploads import (
    HEADER,
    lis,
    received_tubes,
    status_of,
    upload,
)


async def packed_tubes(scene, n, *, start=0, box="BOX-H", people_per_tube=2):
    """n sealed P1 tubes in a dispatched box bound for L1, not received yet."""
    tubes = scene.barcodes["P1"][start : start + n]
    for k, tube in enumerate(tubes):
        first = (start + k) * people_per_tube
        await scene.fill(tube, range(first, first + people_per_tube))
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tube}/seal", None, "P1")
    await scene.ok("/boxes", {"barcode": box, "lab": "L1", "tubes": tubes}, "P1")
    await scene.ok(f"/boxes/{box}/dispatch", None, "P1")
    return tubes


async def tube(scene, barcode):
    r = await scene.client.get(
        f"/rounds/{scene.round_id}/tubes/{barcode}", headers=scene.tokens["admin"]
    )
    assert r.status_code == 200, r.text
    return r.json()


async def reruns(scene, lab="L1"):
    r = await scene.client.get(f"/labs/{lab}/reruns", headers=scene.tokens[lab])
    assert r.status_code == 200, r.text
    return r.json()["items"]


FAILED_NTC = "{plate},A1,NTC,ntc,33,,"  # the negative control amplifies


def failed_plate(rows, plate="PL1"):
    return "\n".join([HEADER, FAILED_NTC.format(plate=plate), f"{plate},A2,PC,pc,28,29,27", *rows])


class TestHeldRows:
    async def test_rows_before_the_box_scan_are_held_then_applied_at_receipt(self, scene):
        t = await packed_tubes(scene, 2)
        body = (
            await upload(scene, lis([f"PL1,A3,{t[0]},sample,30,31,27", f"PL1,A4,{t[1]},,,,27"]))
        ).json()
        assert (body["held"], body["rejected_total"], body["rejected"]) == (2, 0, [])
        assert await status_of(scene, 0) == "pending"
        assert (await tube(scene, t[0]))["state"] == "in_transit"

        receipt = await scene.ok("/boxes/BOX-H/receive", {"tubes_scanned": t}, "L1")
        assert receipt["results_applied"] == 2
        assert (await tube(scene, t[0]))["result"]["call"] == "positive"
        assert await status_of(scene, 0) == "retest"
        assert await status_of(scene, 2) == "negative"
        cases = await scene.client.get(
            f"/rounds/{scene.round_id}/retests", headers=scene.tokens["admin"]
        )
        assert [c["pool_tube"] for c in cases.json()["items"]] == [t[0]]

    async def test_held_rows_apply_once_and_only_for_the_tubes_received(self, scene):
        t = await packed_tubes(scene, 2)
        content = lis([f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,,,27"])
        await upload(scene, content)
        again = (await upload(scene, content)).json()
        assert again["already_uploaded"] is True
        first = await scene.ok("/boxes/BOX-H/receive", {"tubes_scanned": t[:1]}, "L1")
        assert first["results_applied"] == 1
        assert (await tube(scene, t[1]))["state"] == "in_transit"
        late = await scene.ok("/boxes/BOX-H/receive", {"tubes_scanned": t[1:]}, "L1")
        assert late["results_applied"] == 1
        assert (await tube(scene, t[0]))["result"]["version"] == 1
        assert await status_of(scene, 2) == "negative"

    async def test_a_row_for_a_tube_on_its_way_to_another_lab_is_rejected(self, scene):
        tubes = scene.barcodes["P1"][:1]
        await scene.fill(tubes[0], [0, 1])
        await scene.post(f"/rounds/{scene.round_id}/tubes/{tubes[0]}/seal", None, "P1")
        await scene.ok("/boxes", {"barcode": "BOX-L2", "lab": "L2", "tubes": tubes}, "P1")
        body = (await upload(scene, lis([f"PL1,A3,{tubes[0]},sample,,,27"]))).json()
        assert body["held"] == 0
        assert [(r["line"], r["type"]) for r in body["rejected"]] == [(4, "tube-not-received")]

    async def test_a_held_row_of_a_failed_plate_waits_for_the_rerun(self, scene):
        t = await packed_tubes(scene, 1)
        await upload(scene, failed_plate([f"PL1,A3,{t[0]},sample,,,27"]))
        await scene.ok("/boxes/BOX-H/receive", {}, "L1")
        assert (await tube(scene, t[0]))["state"] == "rerun"
        [plate] = await reruns(scene)
        assert (plate["plate"], plate["tubes"]) == ("PL1", 1)
        assert await status_of(scene, 0) == "pending"


class TestReruns:
    async def test_a_failed_plate_is_listed_and_its_people_are_pending(self, scene):
        t = await received_tubes(scene, 2)
        body = (
            await upload(
                scene,
                failed_plate([f"PL1,A3,{t[0]},sample,30,31,27", f"PL1,A4,{t[1]},sample,,,27"]),
                name="failed.csv",
            )
        ).json()
        assert body["plates"][0]["controls"] == "failed"
        assert body["tubes"]["rerun"] == 2 and body["tubes"]["invalid"] == 0
        [plate] = await reruns(scene)
        assert (plate["plate"], plate["tubes"], plate["filename"]) == ("PL1", 2, "failed.csv")
        assert (await tube(scene, t[0]))["state"] == "rerun"
        assert await status_of(scene, 0) == "pending"
        other_lab = await scene.client.get("/labs/L1/reruns", headers=scene.tokens["L2"])
        assert other_lab.status_code == 403

    async def test_the_next_upload_of_the_plate_decides(self, scene):
        t = await received_tubes(scene, 3)
        rows = [f"PL1,A{k + 3},{t[k]},sample,,,27" for k in range(3)]
        await upload(scene, failed_plate(rows))
        # the re-run holds two of the three tubes; the third goes back to the bench
        await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,30,31,27"]))
        assert await reruns(scene) == []
        assert await status_of(scene, 0) == "negative"
        assert await status_of(scene, 2) == "retest"
        assert (await tube(scene, t[2]))["state"] == "received"
        assert await status_of(scene, 4) == "pending"

    async def test_a_rerun_that_fails_again_keeps_waiting(self, scene):
        t = await received_tubes(scene, 1)
        await upload(scene, failed_plate([f"PL1,A3,{t[0]},sample,,,27"]), name="one.csv")
        await upload(scene, failed_plate([f"PL1,A3,{t[0]},sample,,,26"]), name="two.csv")
        [plate] = await reruns(scene)
        assert plate["filename"] == "two.csv"
        assert (await tube(scene, t[0]))["state"] == "rerun"

    async def test_an_abandoned_plate_makes_its_tubes_invalid(self, scene):
        t = await received_tubes(scene, 2)
        await upload(
            scene, failed_plate([f"PL1,A3,{t[0]},sample,,,27", f"PL1,A4,{t[1]},sample,,,27"])
        )
        r = await scene.post("/labs/L1/reruns/PL1/abandon", None, "L1")
        assert r.status_code == 200, r.text
        assert r.json() == {"plate": "PL1", "status": "abandoned", "invalid": 2}
        assert await reruns(scene) == []
        assert await status_of(scene, 0) == "invalid"
        result = (await tube(scene, t[1]))["result"]
        assert (result["call"], result["plate"], result["well"]) == ("invalid", "PL1", "A4")
        again = await scene.post("/labs/L1/reruns/PL1/abandon", None, "L1")
        assert (again.status_code, again.json()["type"]) == (404, "not-found")

    async def test_a_failed_run_does_not_change_a_standing_result(self, scene):
        t = await received_tubes(scene, 1)
        await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"]))
        await upload(scene, failed_plate([f"PL9,A3,{t[0]},sample,30,31,27"], plate="PL9"))
        assert (await tube(scene, t[0]))["state"] == "resulted"
        assert await status_of(scene, 0) == "negative"


class TestUploadIdentity:
    async def test_the_same_bytes_with_another_plate_or_format_field_are_a_new_upload(self, scene):
        t = await received_tubes(scene, 1)
        rows = ["plate,well,sample,role,ORF1ab,N,IC", ",A1,NTC,ntc,,,", ",A2,PC,pc,28,29,27"]
        content = "\n".join([*rows, f",A3,{t[0]},sample,,,27"])
        first = (await upload(scene, content, plate="PX-1")).json()
        second = (await upload(scene, content, plate="PX-2")).json()
        third = (await upload(scene, content, plate="PX-2", format="lis-csv")).json()
        ids = {first["upload_id"], second["upload_id"], third["upload_id"]}
        assert len(ids) == 3
        assert not second["already_uploaded"] and not third["already_uploaded"]
        assert [p["plate"] for p in second["plates"]] == ["PX-2"]
        same = (await upload(scene, content, plate="PX-2")).json()
        assert same["already_uploaded"] is True and same["upload_id"] == second["upload_id"]

    async def test_uploads_say_when_and_by_whom(self, scene):
        token = await scene.ok("/tokens", {"role": "lab", "lab": "L1", "label": "检测员王五"})
        scene.tokens["wang"] = {"Authorization": f"Bearer {token['token']}"}
        t = await received_tubes(scene, 1)
        body = (await upload(scene, lis([f"PL1,A3,{t[0]},sample,,,27"]), who="wang")).json()
        assert body["uploaded_by"] == "检测员王五" and body["received_at"]
        listed = await scene.client.get("/labs/L1/uploads", headers=scene.tokens["L1"])
        [item] = listed.json()["items"]
        assert (item["uploaded_by"], item["received_at"]) == ("检测员王五", body["received_at"])


class TestCfxPlate:
    async def test_the_run_name_in_a_maestro_file_name_is_the_plate(self, scene):
        t = await received_tubes(scene, 1)
        content = "\n".join(
            [
                ",Well,Fluor,Target,Content,Sample,Cq",
                ",A01,FAM,ORF1ab,NTC,NTC,NaN",
                ",A01,VIC,N,NTC,NTC,NaN",
                ",A02,FAM,ORF1ab,Pos Ctrl,PC,28.1",
                ",A02,VIC,N,Pos Ctrl,PC,29.0",
                f",A03,FAM,ORF1ab,Unkn-01,{t[0]},NaN",
                f",A03,VIC,N,Unkn-01,{t[0]},NaN",
                f",A03,Cy5,IC,Unkn-01,{t[0]},27.2",
            ]
        )
        name = "admin_2022-04-05 10-23-45_BR000123 - Quantification Cq Results.csv"
        body = (await upload(scene, content, name=name)).json()
        assert [p["plate"] for p in body["plates"]] == ["BR000123"]
        with_info = "Plate ID,CFX-RUN-77\n\n" + content
        body = (await upload(scene, with_info, name=name)).json()
        assert [p["plate"] for p in body["plates"]] == ["CFX-RUN-77"]
