"""The resident query page in headless Chromium against a running service: a
mainland ID with a wrong check digit is caught before sending, an answer reads in
plain words, unknown and mismatched answers look alike, and nothing is kept."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from stdnum.cn import ric


def fill(browser, id_number, name):
    for testid, value in (("id-number", id_number), ("name", name)):
        field = browser.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=submit]").click()


def message(browser):
    return browser.find_element(By.CSS_SELECTOR, "[data-testid=message]").text


async def test_a_resident_reads_their_status_in_plain_words(
    browser, live, make_scene, wait_for, screenshot
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=6)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="B1")
        await scene.upload_lis([f"A3,{tube},30,31,26"], "PL1")  # a positive pool

        browser.set_window_size(390, 844)
        browser.get(live.base + "/query")
        bad = scene.ids[0][:-1] + ("0" if scene.ids[0][-1] != "0" else "1")
        fill(browser, bad, scene.names[0])
        assert "校验位" in message(browser)  # refused in the page: nothing was sent

        fill(browser, scene.ids[0], scene.names[1])  # someone else's name
        mismatch = wait_for(lambda: "未查到" in message(browser) and message(browser))
        body = "11010119900101123"
        stranger = body + ric.calc_check_digit(body + "0")  # well-formed, never registered
        fill(browser, stranger, "无名")
        unknown = wait_for(lambda: message(browser) if "未查到" in message(browser) else "")
        assert mismatch == unknown  # no oracle for guessing ID numbers

        fill(browser, scene.ids[0], scene.names[0])
        results = wait_for(
            lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=results]").is_displayed()
        )
        assert results
        item = browser.find_element(By.CSS_SELECTOR, "#items li")
        assert item.get_attribute("data-status") == "retest"
        assert "需复核" in item.text and "原地等待" in item.text and "第1轮" in item.text
        screenshot(browser, "query-phone.png")
        stored = browser.execute_script(
            "return [localStorage.length, sessionStorage.length, document.cookie]"
        )
        assert stored == [0, 0, ""]
        browser.find_element(By.ID, "clear").click()
        assert (
            browser.find_element(By.CSS_SELECTOR, "[data-testid=id-number]").get_attribute("value")
            == ""
        )
