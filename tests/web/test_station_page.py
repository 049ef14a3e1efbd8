"""The sampling station in headless Chromium against a running service, including the
offline path: the service is stopped, the page reloaded from its service worker, a
tube filled and more scanned, the service started again; the database then holds
exactly what was scanned, once, and what the service refused is listed, in Chinese,
across a reload. Sound and speech are replaced by recorders, so the tests can tell a
"go ahead" beep from a "stop" buzz and hear the spoken prompts."""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from sqlalchemy.engine import make_url
from stdnum.iso7064 import mod_37_36

from pooling.barcodes import format_barcode
from tests.conftest import valid_prc_id

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
OK_BEEP, BAD_BEEP = 880, 220

# Records beeps (oscillator frequencies) and spoken prompts instead of playing them.
RECORDERS = """
window.__beeps = []; window.__spoken = [];
window.AudioContext = function () {
  return { currentTime: 0, destination: {},
    createOscillator() { const o = { frequency: {}, connect() {}, stop() {},
                                     start() { window.__beeps.push(o.frequency.value); } };
                         return o; },
    createGain() { return { gain: {}, connect() {} }; } };
};
Object.defineProperty(window, "speechSynthesis", { configurable: true, value: {
  speak(u) { window.__spoken.push(u.text); }, cancel() {}, getVoices() { return []; } } });
"""


def text_of(browser, testid):
    return browser.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def scan(browser, code):
    field = browser.find_element(By.CSS_SELECTOR, "[data-testid=scan]")
    field.send_keys(code, Keys.ENTER)


def beeps(browser):
    return browser.execute_script("return window.__beeps.slice()")


def unregistered_code():
    body = "0000000000000"
    return body + mod_37_36.calc_check_digit(body, alphabet=CODE_ALPHABET)


def mistyped(code):
    """The same code with its check character wrong."""
    wrong = CODE_ALPHABET[(CODE_ALPHABET.index(code[-1]) + 1) % len(CODE_ALPHABET)]
    return code[:-1] + wrong


def no_english(page_text):
    """Back-end text is English in lower case; codes and barcodes are upper case/digits."""
    return re.findall(r"[a-z]{3,}", page_text) == []


CONTRAST = """
const lum = (css) => {
  const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const style = getComputedStyle(arguments[0]);
const [a, b] = [lum(style.color), lum(style.backgroundColor)].sort((x, y) => y - x);
return (a + 0.05) / (b + 0.05);
"""


def contrast(browser, element_id):
    """WCAG contrast ratio of an element's text on its own background."""
    element = browser.find_element(By.ID, element_id)
    return browser.execute_script(CONTRAST, element)


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


async def built_scene(live, make_scene, residents=16):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=residents)
    return scene


def log_in(browser, live, scene, wait_for, who="P1"):
    browser.get(live.base + "/station")
    token = browser.find_element(By.ID, "token")
    wait_for(token.is_displayed, what="the login form")
    browser.execute_script(RECORDERS)
    token.send_keys(scene.tokens[who]["Authorization"].split()[1], Keys.ENTER)
    wait_for(lambda: text_of(browser, "net") == "在线", what="online")
    wait_for(lambda: text_of(browser, "point").startswith(f"采样点 {who}"), what="the point")


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


async def test_a_whole_batch_refused_keeps_every_event(browser, live, make_scene, wait_for):
    scene = await built_scene(live, make_scene)
    codes, tube = scene.codes, scene.barcodes["P1"][0]
    log_in(browser, live, scene, wait_for)
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
    assert await held(live) == []

    browser.execute_script("window.fetch = window.__fetch")  # the service is mended
    wait_for(lambda: text_of(browser, "pending") == "0", timeout=30, what="the queue sent")
    wait_for(lambda: not browser.find_element(By.ID, "queue-problem").is_displayed())
    rows = await held(live)
    assert [(r["barcode"], r["samples"]) for r in rows] == [(tube, 3)]
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


def device_data(browser):
    """Everything the station keeps in IndexedDB and localStorage."""
    return browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const req = indexedDB.open("station");
        req.onsuccess = async () => {
          const db = req.result, out = {local: localStorage.getItem("station.state")};
          for (const name of db.objectStoreNames) {
            out[name] = await new Promise((ok) => {
              const r = db.transaction(name).objectStore(name).getAll();
              r.onsuccess = () => ok(r.result);
            });
          }
          done(out);
        };
        """
    )


def click(browser, label):
    for button in browser.find_elements(By.CSS_SELECTOR, "[data-testid=ask] button"):
        if button.text == label:
            button.click()
            return
    raise AssertionError(f"no button {label!r}")


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
