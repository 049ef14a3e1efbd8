"""What the station page tests share: driving the page, recorders for its sound and
speech, and reading what the service's database holds."""

from __future__ import annotations

import re

import asyncpg
import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy.engine import make_url
from stdnum.iso7064 import mod_37_36

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
