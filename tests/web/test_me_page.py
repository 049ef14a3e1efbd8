"""The resident's own page (/me) in headless Chromium against a running service: a
resident registers themselves and two family members on one phone; the service goes
away; the page reloads from its service worker and still shows all three QR codes,
each one tap away and each decodable (zbarimg on a screenshot of the code). Nothing
personal is left in the browser beyond the codes and the masked names. A result
looked up on the page names the lab and the report time in the service's zone."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from stdnum.cn import ric


def prc(region: str, born: str, seq: str = "123") -> str:
    body = region + born + seq
    return body + ric.calc_check_digit(body + "0")


FAMILY = [
    {"id_type": "prc_id", "id_number": prc("310115", "19800101"), "name": "王小明"},
    {"id_type": "prc_id", "id_number": prc("310115", "20150601"), "name": "王豆豆"},
    {"id_type": "passport", "id_number": "G12345678", "name": "Mary Wang", "nationality": "GBR"},
]
PHONE = "13900001111"


def by(browser, testid):
    return browser.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")


def register(browser, wait_for, person, count):
    if not by(browser, "register").is_displayed():
        by(browser, "add").click()
    Select(by(browser, "id-type")).select_by_value(person["id_type"])
    fields = {"id-number": person["id_number"], "name": person["name"], "phone": PHONE}
    if "nationality" in person:
        fields["nationality"] = person["nationality"]
    for testid, value in fields.items():
        field = by(browser, testid)
        field.clear()
        field.send_keys(value)
    Select(by(browser, "district")).select_by_value("D2")
    by(browser, "submit").click()
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#people button")) == count,
        what=f"{count} people",
    )


def decode(png: bytes, folder) -> str:
    path = folder / "code.png"
    path.write_bytes(png)
    out = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True)
    return out.stdout.strip()


async def test_a_family_keeps_its_codes_on_the_phone_offline(
    browser, live, make_scene, wait_for, screenshot, tmp_path
):
    if not shutil.which("zbarimg"):
        pytest.skip("zbarimg not found: install Debian's zbar-tools (.ci/run does)")
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=2)
        tube = scene.barcodes["P1"][0]
        await scene.fill(tube, [0, 1])
        await scene.ship([tube], box="B1")
        await scene.upload_lis([f"A3,{tube},,,26"], "PL1")  # negative
        answer = await client.post(
            "/results/query", json={"id_number": scene.ids[0], "name": scene.names[0]}
        )
        reported = answer.json()["items"][0]["reported_at"]

        browser.set_window_size(390, 844)
        browser.get(live.base + "/me")
        wait_for(lambda: len(Select(by(browser, "district")).options) == 2, what="districts")
        for count, person in enumerate(FAMILY, start=1):
            register(browser, wait_for, person, count)
        assert "王*明" in by(browser, "people").text and "M*******g" in by(browser, "people").text
        wait_for(
            lambda: browser.execute_script("return navigator.serviceWorker.controller !== null"),
            what="the service worker",
        )
        codes = [
            b.get_attribute("data-code")
            for b in browser.find_elements(By.CSS_SELECTOR, "#people button")
        ]
        for code, person in zip(codes, FAMILY, strict=True):
            read = (await client.get(f"/residents/{code}", headers=scene.tokens["admin"])).json()
            assert (read["district"], read["id_type"]) == ("D2", person["id_type"])

        # the result as a certificate: lab and report time in the service's zone
        for testid, value in (("q-id", scene.ids[0]), ("q-name", scene.names[0])):
            by(browser, testid).send_keys(value)
        by(browser, "q-submit").click()
        item = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#items li"))
        assert "阴性" in item.text and "检测机构 实验室L1" in item.text
        assert "报告 " + reported[:16].replace("T", " ") in item.text
        assert reported.endswith("+08:00")

    # the service goes away; the resident opens the page again at the sampling point
    live.process.terminate()
    await asyncio.to_thread(live.process.wait, 30)
    browser.refresh()
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#people button")) == 3,
        what="the page from its worker",
    )
    for i, code in enumerate(codes):
        browser.find_elements(By.CSS_SELECTOR, "#people button")[i].click()  # one tap
        wait_for(lambda c=code: by(browser, "qr").get_attribute("data-code") == c)
        qr = by(browser, "qr")
        assert qr.size["width"] >= 300  # large: most of a phone's width
        assert decode(qr.screenshot_as_png, tmp_path) == code
    screenshot(browser, "me-phone-offline.png")

    kept = browser.execute_script(
        "return JSON.stringify(Object.assign({}, localStorage)) + document.cookie"
        " + JSON.stringify(Object.assign({}, sessionStorage))"
    )
    for person in FAMILY:
        assert person["id_number"] not in kept and person["name"] not in kept
    assert PHONE not in kept and all(code in kept for code in codes)
