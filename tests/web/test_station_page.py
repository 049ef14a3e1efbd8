"""The sampling station in headless Chromium against a running service, including the
offline path: the service is stopped, the page reloaded from its service worker, a
tube filled and more scanned, the service started again; the database then holds
exactly what was scanned, once, and what the service refused is listed, in Chinese,
across a reload. Sound and speech are replaced by recorders, so the tests can tell a
"go ahead" beep from a "stop" buzz and hear the spoken prompts."""

from __future__ import annotations

import asyncio
import json

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.conftest import valid_prc_id
from tests.web.station_page import (
    BAD_BEEP,
    OK_BEEP,
    RECORDERS,
    beeps,
    built_scene,
    contrast,
    device_data,
    held,
    log_in,
    mistyped,
    no_english,
    scan,
    text_of,
    unregistered_code,
)


async def test_the_station_keeps_scanning_offline_and_loses_nothing(
    browser, live, make_scene, wait_for, screenshot
):
    scene = await built_scene(live, make_scene)
    codes, tubes = scene.codes, scene.barcodes["P1"]
    browser.set_window_size(390, 844)
    log_in(browser, live, scene, wait_for)
    assert text_of(browser, "point") == "采样点 P1 采样点P1"
    assert contrast(browser, "net") >= 4.5 and contrast(browser, "pending-pill") >= 4.5
    wait_for(
        lambda: browser.execute_script("return navigator.serviceWorker.controller !== null"),
        what="the service worker",
    )

    scan(browser, tubes[0])
    wait_for(lambda: text_of(browser, "tube").startswith(tubes[0]))
    for i, code in enumerate(codes[:3]):
        scan(browser, code)
        wait_for(lambda n=i + 1: text_of(browser, "count") == str(n), what=f"{i + 1} people")
    # online, the service's answer names who was scanned (masked), large and aloud
    assert text_of(browser, "who") == "张*2 第 3 位"
    assert "张某2,第3位" in browser.execute_script("return window.__spoken")
    assert beeps(browser) == [OK_BEEP] * 4

    scan(browser, codes[0])
    wait_for(lambda: "已在这支试管中" in text_of(browser, "message"))
    scan(browser, tubes[1][:-1] + str((int(tubes[1][-1]) + 1) % 10))
    wait_for(lambda: "校验错误" in text_of(browser, "message"))

    # a code whose check character is wrong is stopped on the page, before any beep
    # that would let the clerk swab; nothing is queued, the count stays
    before = len(beeps(browser))
    scan(browser, mistyped(codes[3]))
    wait_for(lambda: "居民码校验错误" in text_of(browser, "message"))
    assert beeps(browser)[before:] == [BAD_BEEP]
    # a well-formed code nobody holds: the service refuses it at once; the count on
    # screen stays the service's count
    scan(browser, unregistered_code())
    wait_for(lambda: "查无此居民码" in text_of(browser, "message"))
    assert beeps(browser)[before:] == [BAD_BEEP, BAD_BEEP]
    assert text_of(browser, "count") == "3" and text_of(browser, "pending") == "0"
    assert [r["count"] for r in await held(live)] == [3]

    # the service goes away; the clerk reloads the page and keeps going
    live.process.terminate()
    await asyncio.to_thread(live.process.wait, 30)
    browser.refresh()
    wait_for(lambda: text_of(browser, "count") == "3", what="the page from its worker")
    browser.execute_script(RECORDERS)
    assert text_of(browser, "capacity") == "10"
    for code in codes[3:10]:
        scan(browser, code)
    wait_for(lambda: "满管" in text_of(browser, "next"), what="a full tube")
    assert "第10位。满管,请换管" in browser.execute_script("return window.__spoken")
    scan(browser, codes[10])  # an eleventh person: there is no open tube
    wait_for(lambda: "请先扫描试管" in text_of(browser, "message"))
    scan(browser, tubes[1])
    wait_for(lambda: text_of(browser, "tube").startswith(tubes[1]))
    scan(browser, codes[10])
    scan(browser, codes[11])
    scan(browser, unregistered_code())  # the service will refuse it once it hears of it
    wait_for(lambda: text_of(browser, "count") == "3", what="three in the second tube")
    # seven scans and the full tube's seal, then three more
    wait_for(lambda: text_of(browser, "pending") == "11", what="eleven events waiting")
    assert text_of(browser, "net") == "离线"
    screenshot(browser, "station-offline-phone.png")

    await live.start()  # the service is back: the queue drains by itself
    wait_for(lambda: text_of(browser, "pending") == "0", timeout=30, what="the queue sent")
    wait_for(lambda: "查无此居民码" in text_of(browser, "refused"), what="the refusal")
    # the count follows the service's: the refused scan no longer counts
    wait_for(lambda: text_of(browser, "count") == "2", what="the service's count")
    rows = {r["barcode"]: r for r in await held(live)}
    assert (rows[tubes[0]]["state"], rows[tubes[0]]["count"], rows[tubes[0]]["samples"]) == (
        "sealed",
        10,
        10,
    )
    assert rows[tubes[0]]["people"] == 10
    assert (rows[tubes[1]]["state"], rows[tubes[1]]["samples"]) == ("open", 2)
    assert sum(r["samples"] for r in rows.values()) == 12

    # the refused list is kept on the device, in Chinese, with what to do next
    browser.refresh()
    wait_for(lambda: "查无此居民码" in text_of(browser, "refused"), what="refusals kept")
    refused = text_of(browser, "refused")
    assert "无码人员登记" in refused and unregistered_code() in refused
    assert no_english(browser.find_element(By.TAG_NAME, "body").text)
    browser.execute_script("document.querySelector('#refused').scrollIntoView()")
    screenshot(browser, "station-refused-phone.png")

    # the full tube goes into a box to L2, packed and dispatched from the page
    browser.find_element(By.CSS_SELECTOR, "[data-testid=box]").send_keys("BOX-S1", Keys.ENTER)
    Select(browser.find_element(By.CSS_SELECTOR, "[data-testid=lab]")).select_by_value("L2")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=box-tube]").send_keys(tubes[0], Keys.ENTER)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=dispatch]").click()
    wait_for(lambda: "已发运" in text_of(browser, "box-message"), what="the box dispatched")
    rows = {r["barcode"]: r for r in await held(live)}
    assert rows[tubes[0]]["state"] == "in_transit"
    screenshot(browser, "station-phone.png")

    # logging out takes the token off the device
    browser.find_element(By.CSS_SELECTOR, "[data-testid=logout]").click()
    wait_for(lambda: browser.find_element(By.ID, "token").is_displayed(), what="the login form")
    stored = browser.execute_script("return localStorage.getItem('station.state')")
    assert scene.tokens["P1"]["Authorization"].split()[1] not in stored


# Makes /sync answer a whole-batch 422 and /samples unreachable, until undone.
REFUSE_BATCHES = """
window.__fetch = window.fetch;
window.fetch = (url, options) => {
  if (String(url).endsWith("/sync")) {
    return Promise.resolve(new Response(JSON.stringify({type: "invalid-request",
      title: "Invalid request", status: 422, detail: "events: malformed"}),
      {status: 422, headers: {"Content-Type": "application/problem+json"}}));
  }
  if (String(url).includes("/samples")) { return Promise.reject(new TypeError("offline")); }
  return window.__fetch(url, options);
};
"""


# The page's first version kept its queue in IndexedDB "station" version 1.
SEED_V1_QUEUE = """
const [tube, code, done] = arguments;
const req = indexedDB.open("station", 1);
req.onupgradeneeded = () => {
  req.result.createObjectStore("queue", { keyPath: "seq", autoIncrement: true });
  req.result.createObjectStore("tubes", { keyPath: "barcode" });
};
req.onsuccess = () => {
  const tx = req.result.transaction("queue", "readwrite");
  tx.objectStore("queue").add({ event_id: "v1-event", at: new Date().toISOString(),
                               type: "sample", tube, resident_code: code, kind: "pool" });
  tx.oncomplete = () => { req.result.close(); done(true); };
};
"""


async def test_a_whole_batch_refused_keeps_every_event(browser, live, make_scene, wait_for):
    scene = await built_scene(live, make_scene)
    codes, tube, earlier_tube = scene.codes, scene.barcodes["P1"][0], scene.barcodes["P1"][1]
    # a phone that still holds a scan queued by the page's first version (IndexedDB v1)
    browser.get(live.base + "/healthz")
    browser.execute_async_script(SEED_V1_QUEUE, earlier_tube, codes[5])
    log_in(browser, live, scene, wait_for)
    wait_for(lambda: text_of(browser, "pending") == "0", what="the old queue sent")
    # a device without speech synthesis scans just the same
    browser.execute_script(
        "Object.defineProperty(window, 'speechSynthesis', {configurable: true, value: undefined})"
    )
    scan(browser, tube)
    wait_for(lambda: text_of(browser, "tube").startswith(tube))
    browser.execute_script(REFUSE_BATCHES)
    for code in codes[:3]:
        scan(browser, code)
    wait_for(lambda: text_of(browser, "count") == "3", what="three scans")
    wait_for(lambda: "保留在本机" in text_of(browser, "queue-problem"), what="the problem shown")
    assert text_of(browser, "pending") == "3"
    assert no_english(text_of(browser, "queue-problem"))
    assert [r["barcode"] for r in await held(live)] == [earlier_tube]

    browser.execute_script("window.fetch = window.__fetch")  # the service is mended
    wait_for(lambda: text_of(browser, "pending") == "0", timeout=30, what="the queue sent")
    wait_for(lambda: not browser.find_element(By.ID, "queue-problem").is_displayed())
    rows = await held(live)
    assert [(r["barcode"], r["samples"]) for r in rows] == [(tube, 3), (earlier_tube, 1)]
    assert text_of(browser, "count") == "3"


async def test_a_walk_in_read_from_an_id_card_offline_lands_after_reconnecting(
    browser, live, make_scene, wait_for
):
    scene = await built_scene(live, make_scene, residents=2)
    tube = scene.barcodes["P1"][0]
    log_in(browser, live, scene, wait_for)
    scan(browser, tube)
    wait_for(lambda: text_of(browser, "tube").startswith(tube))
    scan(browser, scene.codes[0])
    wait_for(lambda: text_of(browser, "count") == "1")

    live.process.terminate()
    await asyncio.to_thread(live.process.wait, 30)
    walk_in = valid_prc_id(777)
    scan(browser, walk_in)  # an ID-card reader types the number into the scan field
    name = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=name]"))
    wait_for(lambda: name.is_displayed(), what="the walk-in form")
    assert (
        browser.find_element(By.CSS_SELECTOR, "[data-testid=id-number]").get_attribute("value")
        == walk_in
    )
    name.send_keys("欧阳·娜娜")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=walkin-submit]").click()
    wait_for(lambda: text_of(browser, "count") == "2", what="the walk-in counted")
    assert text_of(browser, "pending") == "1"
    assert walk_in in json.dumps(device_data(browser), ensure_ascii=False)

    await live.start()
    wait_for(lambda: text_of(browser, "pending") == "0", timeout=30, what="the queue sent")
    wait_for(lambda: "居民码" in text_of(browser, "message"), what="the new code shown")
    rows = await held(live)
    assert [(r["barcode"], r["samples"], r["people"]) for r in rows] == [(tube, 2, 2)]
    # nothing of the person is left on the device once the service has them
    kept = json.dumps(device_data(browser), ensure_ascii=False)
    assert walk_in not in kept and "欧阳" not in kept
