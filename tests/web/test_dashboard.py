"""The command-center dashboard in headless Chromium against a running service: the
figures it shows match the API and follow scans, uploads and de-pool cases without a
reload; recent events, case histories, recall sheets, the report and the lagging
points are at hand; times read in the deployment's zone; the header fits a phone."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

POSITIVE, NEGATIVE = "30.1,31.2,26", ",,26"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def shown(driver, testid):
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]").text


def rows(driver, table, key):
    """[(data-<key>, text)] of a table's rows, read in one go: the page redraws a
    table when its figures change, which would leave element handles stale."""
    return [
        tuple(row)
        for row in driver.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
            ".map((tr) => [tr.dataset[arguments[1]] || null, tr.innerText]);",
            table,
            key,
        )
    ]


def click(driver, selector, wait_for):
    """Click what ``selector`` finds, again if a redraw took it away under us."""

    def attempt():
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for(attempt, what=f"a click on {selector}")


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
        districts = rows(browser, "#districts", "district")
        assert [code for code, _ in districts] == ["D1", "D2"]
        assert "越秀区" in districts[0][1] and "5 / 3,000" in districts[0][1]
        labs = rows(browser, "#labs", "lab")
        assert [code for code, _ in labs] == ["L1"]
        assert "2 / 200,000" in labs[0][1]
        cases = rows(browser, "#cases", "case")
        assert len(cases) == 1 and p1[0] in cases[0][1]
        wait_for(lambda: shown(browser, "live") == "实时", what="the live feed")
        screenshot(browser, "dashboard.png")

        # a second positive pool: the page follows the feed, no reload
        await scene.fill(p1[2], [7, 8])
        await scene.ship([p1[2]], box="B2")
        await scene.upload_lis([f"A3,{p1[2]},{POSITIVE}"], "PL2")
        wait_for(lambda: shown(browser, "open-cases") == "2", what="the new case")
        assert "新复核案" in shown(browser, "events")
        assert len(rows(browser, "#cases", "case")) == 2

        # phone size
        browser.set_window_size(390, 844)
        screenshot(browser, "dashboard-phone.png")
        for person in range(9):
            assert scene.names[person] not in browser.page_source


def downloaded(folder, name, wait_for):
    path = folder / name
    wait_for(lambda: path.exists() and path.stat().st_size > 0, what=f"the download {name}")
    return PdfReader(io.BytesIO(path.read_bytes()))


def local(iso, fmt="%H:%M:%S"):
    return f"{datetime.fromisoformat(iso).astimezone(SHANGHAI):{fmt}}"


async def test_the_figures_follow_scans_and_uploads_while_live(
    browser, live, make_scene, wait_for, screenshot
):
    """No de-pooling event is needed: scans and a negative upload move the figures."""
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=12)
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1])

        async def api_progress():
            r = await client.get(
                f"/rounds/{scene.round_id}/progress", headers=scene.tokens["admin"]
            )
            return r.json()

        browser.get(live.base + "/")
        wait_for(lambda: browser.find_element(By.ID, "token"), what="the token field").send_keys(
            live.admin_token, Keys.ENTER
        )
        wait_for(lambda: shown(browser, "live") == "实时", what="the live feed")
        assert shown(browser, "registered") == "2"

        # a re-test of person 0 alone and two new people: samples move, people once each
        await scene.fill(p1[1], [0], kind="single")
        await scene.fill(p1[2], [2, 3])
        progress = await api_progress()
        assert (progress["registered"], progress["samples"]) == (4, 5)
        wait_for(lambda: shown(browser, "registered") == "4", what="people after the scans")
        assert shown(browser, "samples") == "5"

        # a negative upload opens no case, and still moves the figures
        await scene.ship([p1[0], p1[1]], box="B1")
        await scene.upload_lis([f"A3,{p1[0]},{NEGATIVE}", f"A4,{p1[1]},{NEGATIVE}"], "PL1")
        progress = await api_progress()
        wait_for(
            lambda: shown(browser, "tested") == str(progress["tubes"]["tested"]) == "2",
            what="tested after the upload",
        )
        in_lab = progress["labs"][0]["in_lab_hours"]
        assert f"{in_lab['p50']} / {in_lab['p95']}" in rows(browser, "#labs", "lab")[0][1]
        assert shown(browser, "live") == "实时"
        assert shown(browser, "positive-pools") == "0" and shown(browser, "positive-singles") == "0"


async def test_cases_events_points_and_the_report_are_at_hand(
    browser, live, make_scene, wait_for, screenshot, tmp_path
):
    async with httpx.AsyncClient(base_url=live.base + "/api/v1", timeout=30) as client:
        scene = make_scene(client)
        admin = scene.tokens["admin"] = {"Authorization": f"Bearer {live.admin_token}"}
        await scene.build(residents=12)
        for k in range(22):  # 25 points in all: two pages of 20
            await scene.ok(
                "/sampling-points",
                {
                    "code": f"R{k:02d}",
                    "name": f"采样点R{k:02d}",
                    "address": "东风路",
                    "district": "D2",
                    "stations": 1,
                    "people_per_hour_per_station": 60,
                },
            )
        p1 = scene.barcodes["P1"]
        await scene.fill(p1[0], [0, 1, 2])
        await scene.ship([p1[0]], box="B1")
        await scene.upload_lis([f"A3,{p1[0]},{POSITIVE}"], "PL1")
        await scene.fill(p1[1], [3], kind="single")
        await scene.ship([p1[1]], box="B2")
        await scene.upload_lis([f"A3,{p1[1]},{POSITIVE}"], "PL2")
        recent = (await client.get(f"/rounds/{scene.round_id}/events/recent", headers=admin)).json()
        [opened] = recent["items"]

        # the browser's own clock is in New York: the page must still show Shanghai time
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
        browser.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
        )
        browser.get(live.base + "/")
        wait_for(lambda: browser.find_element(By.ID, "token"), what="the token field").send_keys(
            live.admin_token, Keys.ENTER
        )
        wait_for(
            lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"),
            what="the figures",
        )
        # the event that came before the page opened is listed at once
        events = wait_for(lambda: shown(browser, "events"), what="the recent events")
        assert f"{local(opened['at'])} 新复核案 #{opened['case_id']} · P1" in events
        assert "Asia/Shanghai" in shown(browser, "updated")
        assert shown(browser, "positive-pools") == "1" and shown(browser, "positive-singles") == "1"

        # the sampling points, laggards first, two pages
        points = rows(browser, "#points", "point")
        assert len(points) == 20 and all("落后" in text for _, text in points)
        assert "共 25 个 · 落后 25 个" in shown(browser, "points-summary")
        assert points[-1][0] != "P1"  # P1 swabbed the most: last
        click(browser, "[data-testid=points-next]", wait_for)
        wait_for(lambda: "第 2 / 2 页" in shown(browser, "points-page"), what="page two")
        assert [code for code, _ in rows(browser, "#points", "point")][-1] == "P1"
        click(browser, "[data-testid=points-prev]", wait_for)
        wait_for(lambda: "第 1 / 2 页" in shown(browser, "points-page"), what="page one")

        # a case opens on its history, and its recall sheet is one click away
        click(browser, "#cases tbody tr [data-testid=case-open]", wait_for)
        history = wait_for(lambda: shown(browser, "case-history"), what="the case history")
        assert "新复核案" in history
        dialog = browser.find_element(By.ID, "case").text
        assert "待召回" in dialog and scene.names[0] not in dialog
        click(browser, "[data-testid=case-recall]", wait_for)
        sheet = downloaded(tmp_path, f"召回单-{p1[0]}.pdf", wait_for)
        sheet_text = "".join(page.extract_text() for page in sheet.pages)
        assert scene.names[0] in sheet_text and "Asia/Shanghai UTC+08:00" in sheet_text
        browser.find_element(By.ID, "case-close").click()

        # the report: one click
        click(browser, "[data-testid=report]", wait_for)
        report = downloaded(tmp_path, f"轮次报告-{scene.round_id}.pdf", wait_for)
        assert "本报告时间均为 Asia/Shanghai" in report.pages[0].extract_text()

        # the header fits a 390 px phone, and nothing makes the page scroll sideways
        browser.set_window_size(390, 844)
        wait_for(
            lambda: browser.execute_script("return window.innerWidth") <= 390, what="phone size"
        )
        fits = browser.execute_script(
            "const h = document.querySelector('header');"
            "return [h.scrollWidth <= h.clientWidth,"
            " h.getBoundingClientRect().right <= window.innerWidth,"
            " document.documentElement.scrollWidth <= window.innerWidth];"
        )
        assert fits == [True, True, True]
        screenshot(browser, "dashboard-points-phone.png")
