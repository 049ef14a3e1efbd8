"""The sampling station in headless Chromium against a running service, including the
offline path: the service is stopped, the page reloaded from its service worker, a
tube filled and more scanned, the service started again; the database then holds
exactly what was scanned, once."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from sqlalchemy.engine import make_url


def text_of(browser, testid):
    return browser.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def scan(browser, code):
    field = browser.find_element(By.CSS_SELECTOR, "[data-testid=scan]")
    field.send_keys(code, Keys.ENTER)


async def held(live):
    dsn = make_url(live.db_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        return await conn.fetch(
            "SELECT t.barcode, t.state, t.count, count(s.*) AS samples,"
            " count(DISTINCT s.resident_id) AS people"
            " FROM tubes t LEFT JOIN samples s ON s.tube_serial = t.serial"
            " GROUP BY t.barcode, t.state, t.count ORDER BY t.barcode"
        )
    finally:
        await conn.close()


async def test_the_station_keeps_scanning_offline_and_loses_nothing(
    browser, live, make_scene, wait_for, screenshot
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=16)
    codes, tubes = scene.codes, scene.barcodes["P1"]
    browser.set_window_size(390, 844)
    browser.get(live.base + "/station")
    token = wait_for(lambda: browser.find_element(By.ID, "token"))
    token.send_keys(scene.tokens["P1"]["Authorization"].split()[1], Keys.ENTER)
    wait_for(lambda: text_of(browser, "net") == "在线", what="online")
    wait_for(
        lambda: browser.execute_script("return navigator.serviceWorker.controller !== null"),
        what="the service worker",
    )

    scan(browser, tubes[0])
    wait_for(lambda: text_of(browser, "tube").startswith(tubes[0]))
    for code in codes[:3]:
        scan(browser, code)
    wait_for(lambda: text_of(browser, "count") == "3", what="three people")
    scan(browser, codes[0])
    wait_for(
        lambda: (
            "已在本管" in text_of(browser, "message") or "已在此管" in text_of(browser, "message")
        )
    )
    scan(browser, tubes[1][:-1] + str((int(tubes[1][-1]) + 1) % 10))
    wait_for(lambda: "校验错误" in text_of(browser, "message"))
    wait_for(lambda: text_of(browser, "pending") == "0", what="the online scans sent")

    # the service goes away; the clerk reloads the page and keeps going
    live.process.terminate()
    await asyncio.to_thread(live.process.wait, 30)
    browser.refresh()
    wait_for(lambda: text_of(browser, "count") == "3", what="the page from its worker")
    assert text_of(browser, "capacity") == "10"
    for code in codes[3:10]:
        scan(browser, code)
    wait_for(lambda: "已满" in text_of(browser, "message"), what="a full tube")
    scan(browser, codes[10])  # an eleventh person: there is no open tube
    wait_for(lambda: "请先扫描试管" in text_of(browser, "message"))
    scan(browser, tubes[1])
    wait_for(lambda: text_of(browser, "tube").startswith(tubes[1]))
    scan(browser, codes[10])
    scan(browser, codes[11])
    scan(browser, "ZZZZZZZZZZZZZZZ")  # nobody has this code: the service will say so
    wait_for(lambda: text_of(browser, "pending") == "10", what="ten scans waiting")
    assert text_of(browser, "net") == "离线"
    screenshot(browser, "station-offline-phone.png")

    await live.start()  # the service is back: the queue drains by itself
    wait_for(lambda: text_of(browser, "pending") == "0", timeout=30, what="the queue sent")
    wait_for(lambda: "unknown-resident" in text_of(browser, "refused"), what="the refusal")
    rows = {r["barcode"]: r for r in await held(live)}
    assert (rows[tubes[0]]["state"], rows[tubes[0]]["count"], rows[tubes[0]]["samples"]) == (
        "sealed",
        10,
        10,
    )
    assert rows[tubes[0]]["people"] == 10
    assert (rows[tubes[1]]["state"], rows[tubes[1]]["samples"]) == ("open", 2)
    assert sum(r["samples"] for r in rows.values()) == 12

    # the full tube goes into a box to L2, packed and dispatched from the page
    browser.find_element(By.CSS_SELECTOR, "[data-testid=box]").send_keys("BOX-S1", Keys.ENTER)
    Select(browser.find_element(By.CSS_SELECTOR, "[data-testid=lab]")).select_by_value("L2")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=box-tube]").send_keys(tubes[0], Keys.ENTER)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=dispatch]").click()
    wait_for(lambda: "已发运" in text_of(browser, "box-message"), what="the box dispatched")
    rows = {r["barcode"]: r for r in await held(live)}
    assert rows[tubes[0]]["state"] == "in_transit"
    screenshot(browser, "station-phone.png")
