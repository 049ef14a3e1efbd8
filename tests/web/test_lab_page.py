"""The lab page in headless Chromium against a running service: receiving a box by
scanning it (missing and unexpected tubes shown at once), uploading several files at
once (format detected, plates and controls, rejected rows with their line), and the
day's uploads."""

from __future__ import annotations

from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

FIXTURES = Path(__file__).parents[1] / "lab_io" / "fixtures"


def text_of(browser, testid):
    return browser.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


async def test_a_lab_receives_a_box_and_uploads_files(
    browser, live, make_scene, wait_for, screenshot, tmp_path
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=8)
        t = scene.barcodes["P1"]
        for k in range(3):
            await scene.fill(t[k], [2 * k, 2 * k + 1])
            await scene.post(f"/rounds/{scene.round_id}/tubes/{t[k]}/seal", None, "P1")
        await scene.ok("/boxes", {"barcode": "BOX-9", "lab": "L1", "tubes": t[:3]}, "P1")
        await scene.ok("/boxes/BOX-9/dispatch", {}, "P1")

    qs = tmp_path / "QS-0405.txt"
    data = (FIXTURES / "quantstudio_7500.txt").read_bytes()
    for k, tube in enumerate(t[:3]):
        data = data.replace(f"{{t{k}}}".encode(), tube.encode())
    qs.write_bytes(data)
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 500)

    browser.get(live.base + "/lab")
    token = wait_for(lambda: browser.find_element(By.ID, "token"))
    token.send_keys(scene.tokens["L1"]["Authorization"].split()[1], Keys.ENTER)
    wait_for(lambda: text_of(browser, "lab-code") == "L1", what="the lab")

    browser.find_element(By.CSS_SELECTOR, "[data-testid=box]").send_keys("BOX-9", Keys.ENTER)
    tubes = browser.find_element(By.CSS_SELECTOR, "[data-testid=box-tube]")
    for code in (t[0], t[1], t[9]):  # t[2] is missing, t[9] was never in the box
        tubes.send_keys(code, Keys.ENTER)
    assert text_of(browser, "scanned-count") == "3"
    browser.find_element(By.CSS_SELECTOR, "[data-testid=receive]").click()
    receipt = wait_for(
        lambda: text_of(browser, "receipt") if "应到" in text_of(browser, "receipt") else ""
    )
    assert "应到 3" in receipt and f"缺少 {t[2]}" in receipt and f"多出 {t[9]}" in receipt

    browser.find_element(By.CSS_SELECTOR, "[data-testid=files]").send_keys(f"{qs}\n{junk}")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".outcome")) == 2, what="both")
    cards = {
        c.get_attribute("data-file"): c for c in browser.find_elements(By.CSS_SELECTOR, ".outcome")
    }
    assert cards["QS-0405.txt"].get_attribute("data-format") == "quantstudio"
    assert "QS-0405-A" in cards["QS-0405.txt"].text and "合格" in cards["QS-0405.txt"].text
    plate = cards["QS-0405.txt"].find_element(By.CSS_SELECTOR, "tr[data-plate='QS-0405-A']")
    assert plate.text.endswith("1 / 1 / 0 / 0")  # calls on this plate
    assert "阴性 1" in cards["QS-0405.txt"].text and "阳性 1" in cards["QS-0405.txt"].text
    assert "未接收" in cards["photo.jpg"].text
    wait_for(
        lambda: len(browser.find_elements(By.CSS_SELECTOR, "#uploads tbody tr")) == 1,
        what="today's uploads",
    )
    assert "QS-0405.txt" in text_of(browser, "uploads")
    browser.set_window_size(390, 1400)
    screenshot(browser, "lab-phone.png")


ENGLISH = ("tube", "the ", "not ", "error", "Error")


async def test_the_lab_page_tells_what_to_do_in_chinese(
    browser, live, make_scene, wait_for, screenshot, tmp_path
):
    """A plate id sent with a file that has none, a file sent twice (already uploaded,
    with its first time), a failed plate listed for re-run and given up, a leaking tube
    rejected at receipt: every message Chinese, no back-end text."""
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=8)
        t = scene.barcodes["P1"]
        for k in range(3):
            await scene.fill(t[k], [2 * k, 2 * k + 1])
            await scene.post(f"/rounds/{scene.round_id}/tubes/{t[k]}/seal", None, "P1")
        await scene.ok("/boxes", {"barcode": "BOX-7", "lab": "L1", "tubes": t[:3]}, "P1")
        await scene.ok("/boxes/BOX-7/dispatch", {}, "P1")

    no_plate = tmp_path / "noplate.csv"
    no_plate.write_text(
        "plate,well,sample,role,ORF1ab,N,IC\n,A1,NTC,ntc,,,\n,A2,PC,pc,28,29,27\n"
        f",A3,{t[0]},sample,,,27\n"
    )
    failed = tmp_path / "failed.csv"
    failed.write_text(
        "plate,well,sample,role,ORF1ab,N,IC\nPF-1,A1,NTC,ntc,33,,\nPF-1,A2,PC,pc,28,29,27\n"
        f"PF-1,A3,{t[1]},sample,,,27\n"
    )

    browser.get(live.base + "/lab")
    token = wait_for(lambda: browser.find_element(By.ID, "token"))
    token.send_keys(scene.tokens["L1"]["Authorization"].split()[1], Keys.ENTER)
    wait_for(lambda: text_of(browser, "lab-code") == "L1", what="the lab")

    browser.find_element(By.CSS_SELECTOR, "[data-testid=box]").send_keys("BOX-7", Keys.ENTER)
    tubes = browser.find_element(By.CSS_SELECTOR, "[data-testid=box-tube]")
    for code in t[:2]:
        tubes.send_keys(code, Keys.ENTER)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=reject-tube]").send_keys(t[2], Keys.ENTER)
    assert t[2] in text_of(browser, "rejected-list") and "漏液" in text_of(browser, "rejected-list")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=receive]").click()
    receipt = wait_for(
        lambda: text_of(browser, "receipt") if "应到" in text_of(browser, "receipt") else ""
    )
    assert "实收 2" in receipt and f"拒收 {t[2]} 共 2 人需重新采样" in receipt

    browser.find_element(By.CSS_SELECTOR, "[data-testid=box]").send_keys("NO-SUCH", Keys.ENTER)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=receive]").click()
    refused = wait_for(
        lambda: text_of(browser, "receipt") if "未完成" in text_of(browser, "receipt") else ""
    )
    assert "请核对条码后重新扫描" in refused and not any(w in refused for w in ENGLISH)

    browser.find_element(By.CSS_SELECTOR, "[data-testid=plate]").send_keys("PN-42")
    files = browser.find_element(By.CSS_SELECTOR, "[data-testid=files]")
    files.send_keys(str(no_plate))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".outcome")) == 1, what="one")
    assert "PN-42" in browser.find_element(By.CSS_SELECTOR, ".outcome").text
    files.send_keys(str(no_plate))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".outcome")) == 2, what="two")
    again = browser.find_elements(By.CSS_SELECTOR, ".outcome")[0].text
    assert "此文件已上传过(首次上传于" in again

    browser.find_element(By.CSS_SELECTOR, "[data-testid=plate]").clear()
    files.send_keys(str(failed))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".outcome")) == 3, what="three")
    assert "失控:请重做此板" in browser.find_elements(By.CSS_SELECTOR, ".outcome")[0].text
    row = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#reruns tr[data-plate='PF-1']"))
    assert "PF-1" in row.text
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#uploads tbody tr")) == 2)
    uploads = text_of(browser, "uploads")
    assert "时间(北京时间)" in uploads and "实验室令牌" in uploads
    row.find_element(By.TAG_NAME, "button").click()
    browser.switch_to.alert.accept()
    message = wait_for(
        lambda: (
            text_of(browser, "rerun-message")
            if "已放弃" in text_of(browser, "rerun-message")
            else ""
        )
    )
    assert "1 管判为无效" in message
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, "#reruns tbody tr"))
    browser.set_window_size(390, 1600)
    screenshot(browser, "lab-field-phone.png")
