"""The command-center dashboard in headless Chromium against a running service: the
figures it shows match the API, and a new de-pool case appears without a reload."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

POSITIVE = "30.1,31.2,26"


def shown(driver, testid):
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


async def test_the_dashboard_shows_the_apis_figures_and_updates_live(
    browser, live, make_scene, wait_for, screenshot
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=12)
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.fill(p1[1], [3, 4])
        await scene.ship([p1[0], p1[1]], box="B1")
        await scene.upload_lis([f"A3,{p1[0]},{POSITIVE}", f"A4,{p1[1]},,,26"], "PL1")
        await scene.fill(scene.barcodes["Q1"][0], [5, 6], who="Q1")

        browser.get(live.base + "/")
        field = wait_for(lambda: browser.find_element(By.ID, "token"), what="the token field")
        field.send_keys(live.admin_token, Keys.ENTER)
        wait_for(
            lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"),
            what="the figures",
        )
        progress = (
            await client.get(f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"])
        ).json()
        assert shown(browser, "registered") == f"{progress['registered']:,}" == "7"
        assert shown(browser, "population") == "5,000"
        assert shown(browser, "tested") == str(progress["tubes"]["tested"]) == "2"
        assert shown(browser, "positive-pools") == "1"
        assert shown(browser, "open-cases") == str(progress["retests"]["open"]) == "1"
        districts = browser.find_elements(By.CSS_SELECTOR, "#districts tbody tr")
        assert [d.get_attribute("data-district") for d in districts] == ["D1", "D2"]
        assert "越秀区" in districts[0].text and "5 / 3,000" in districts[0].text
        labs = browser.find_elements(By.CSS_SELECTOR, "#labs tbody tr")
        assert [lab.get_attribute("data-lab") for lab in labs] == ["L1"]
        assert "2 / 200,000" in labs[0].text
        cases = browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")
        assert len(cases) == 1 and p1[0] in cases[0].text
        wait_for(lambda: shown(browser, "live") == "实时", what="the live feed")
        screenshot(browser, "dashboard.png")

        # a second positive pool: the page follows the feed, no reload
        await scene.fill(p1[2], [7, 8])
        await scene.ship([p1[2]], box="B2")
        await scene.upload_lis([f"A3,{p1[2]},{POSITIVE}"], "PL2")
        wait_for(lambda: shown(browser, "open-cases") == "2", what="the new case")
        assert "新复核案" in shown(browser, "events")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")) == 2

        # phone size
        browser.set_window_size(390, 844)
        screenshot(browser, "dashboard-phone.png")
        for person in range(9):
            assert scene.names[person] not in browser.page_source
