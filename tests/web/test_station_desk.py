"""The station's desk online: tubes refused at the tube scan, a person already sampled
elsewhere (where and when), a person to be swabbed alone (a single tube offered at
once), and the question before leaving a partly filled tube."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By

from pooling.barcodes import format_barcode
from tests.web.station_page import click, held, log_in, no_english, scan, text_of


async def test_the_station_refuses_at_the_tube_scan_and_says_what_to_do(
    browser, live, make_scene, wait_for
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=6)
        p1 = scene.barcodes["P1"]
        # people 0 and 1 were in a positive pool: they are to be recalled, swabbed alone
        await scene.fill(p1[10], [0, 1])
        await scene.ship([p1[10]], box="BOX-POS")
        await scene.upload_lis([f"A3,{p1[10]},30.1,31.2,26"], "PL1")
        await scene.fill(p1[11], [2])  # person 2 is in a live pool tube already
    codes = scene.codes
    log_in(browser, live, scene, wait_for)

    # another point's tube, or one not issued for this round: refused at the tube scan
    scan(browser, scene.barcodes["P2"][0])
    wait_for(lambda: "属于其他采样点" in text_of(browser, "message"), what="another point's")
    scan(browser, format_barcode(99_999))
    wait_for(lambda: "不是本轮发给本采样点" in text_of(browser, "message"), what="not issued")
    assert text_of(browser, "tube") == "请扫描试管条码"

    scan(browser, p1[0])
    wait_for(lambda: text_of(browser, "tube").startswith(p1[0]))
    scan(browser, codes[3])
    wait_for(lambda: text_of(browser, "count") == "1")
    scan(browser, codes[2])  # already in pool tube p1[11]: the page says where and when
    wait_for(lambda: "本轮已在其他混管中采样" in text_of(browser, "message"))
    assert f"采样点 P1,试管 {p1[11]},时间 " in text_of(browser, "message")

    scan(browser, codes[0])  # to be recalled: a single tube is offered at once
    wait_for(lambda: "单人单管" in text_of(browser, "message"), what="needs-single")
    click(browser, "改用单管采样")
    wait_for(lambda: "单管" in text_of(browser, "message"))
    scan(browser, p1[1])
    wait_for(lambda: "回到混管" in text_of(browser, "message"), what="the single taken")
    wait_for(lambda: text_of(browser, "tube") == p1[0] and text_of(browser, "count") == "1")

    # a new tube while this one is partly filled: seal it first?
    scan(browser, p1[2])
    wait_for(lambda: "先封管吗" in text_of(browser, "ask"), what="the question")
    click(browser, "先封管,再换新管")
    wait_for(lambda: text_of(browser, "tube") == p1[2], what="the new tube")
    wait_for(lambda: text_of(browser, "pending") == "0", what="the seal sent")
    rows = {r["barcode"]: r for r in await held(live)}
    assert (rows[p1[0]]["state"], rows[p1[0]]["samples"]) == ("sealed", 1)
    assert (rows[p1[1]]["state"], rows[p1[1]]["samples"]) == ("sealed", 1)
    assert no_english(browser.find_element(By.TAG_NAME, "body").text)
